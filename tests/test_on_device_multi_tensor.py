"""The on_device stage's measurement of artifacts with several inputs and outputs: every input fed in the file's form,
every output compared with the host's, on the test devices (tests/multi_tensor_models.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.tensors import TensorSpec
from pipeline.core.errors import ToolError, UserError
from pipeline.devices.testbed import bring_up as testbed
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target
from pipeline.runtimes import to_artifact_inputs
from pipeline.stages.contract import Context
from pipeline.stages.on_device import measure
from tests.multi_tensor_models import (
    CHANNELS,
    CLASSES,
    EMBEDDING,
    FEATURES,
    SERIES,
    STEPS,
    VECTORS,
    N,
    keras_two_input_tflite,
    lower_to_pte,
    per_sample,
    two_input_model,
)

TWO_INPUTS = (TensorSpec("series", (1, CHANNELS, STEPS)), TensorSpec("vector", (1, FEATURES)))
TWO_OUTPUTS = (TensorSpec("scores", (1, CLASSES)), TensorSpec("embedding", (1, EMBEDDING)))


def context(target: str, tmp_path: Path) -> Context:
    return Context(load_recipe("fashion-mnist-mobilenetv2"), load_target(target), {}, tmp_path, 1,
                   logging.getLogger("test"))


def artifact(path: Path, fmt: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Artifact:
    return Artifact(f"{fmt}-two-inputs", str(path), fmt, "fp32", "", inputs[0].shape, inputs=inputs, outputs=outputs)


@pytest.fixture(scope="module")
def two_input_pte(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The two-input model as a .pte, and labels PyTorch's own scores agree with (so device accuracy is 1.0)."""
    model = two_input_model()
    path = tmp_path_factory.mktemp("pte") / "two_inputs.pte"
    lower_to_pte(model, (SERIES, VECTORS), path)
    return path, per_sample(model, SERIES, VECTORS)[0].argmax(1)


def test_every_input_goes_in_as_the_file_takes_it():
    image = TensorSpec("image", (1, 5, 6, 3), "int8", "NHWC", {"scale": 0.5, "zero_point": -3})
    tokens = TensorSpec("tokens", (1, 7), "int64")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    ids = np.arange(14).reshape(2, 7)
    art = Artifact("a", "/x", "tflite", "int8", "NHWC", (1, 5, 6, 3), inputs=(image, tokens))
    fed_image, fed_tokens = to_artifact_inputs([x, ids], art)
    assert fed_image.dtype == np.int8 and fed_image.shape == (2, 5, 6, 3) and fed_image.flags.c_contiguous
    assert fed_image[1, 2, 4, 1] == np.clip(np.rint(x[1, 1, 2, 4] / 0.5) - 3, -128, 127)
    assert fed_tokens.dtype == np.int64 and (fed_tokens == ids).all()


def test_data_with_another_number_of_inputs_is_one_line_naming_the_artifact(tmp_path):
    art = artifact(Path("/x.pte"), "pte", TWO_INPUTS, TWO_OUTPUTS)
    with pytest.raises(UserError, match=r"the data gives 1 inputs, pte-two-inputs takes 2 \(series, vector\)"):
        measure(None, art, [SERIES], None, context("adb-loopback", tmp_path))


@pytest.mark.devices
def test_emulated_phone_measures_both_outputs_of_a_two_input_pte(two_input_pte, tmp_path):
    path, labels = two_input_pte
    device = testbed.up("emulated-arm64")
    res = measure(device, artifact(path, "pte", TWO_INPUTS, TWO_OUTPUTS), [SERIES, VECTORS], labels,
                  context("emulated-arm64", tmp_path))
    assert [o["name"] for o in res["outputs"]] == ["scores", "embedding"]
    assert all(o["max_rel_diff"] <= 1e-5 for o in res["outputs"])
    assert res["host_agreement"] == 1.0 and res["accuracy"] == 1.0 == res["host_accuracy"] and res["samples"] == N
    assert res["abi"] == "aarch64" and res["runtime"] == "executorch" and res["emulated"]


@pytest.mark.devices
def test_emulated_phone_measures_both_outputs_of_a_two_input_tflite(tmp_path):
    path = tmp_path / "two_inputs.tflite"
    inputs, _ = keras_two_input_tflite(path)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    specs = [tuple(TensorSpec(d["name"], tuple(d["shape"])) for d in details)
             for details in (interpreter.get_input_details(), interpreter.get_output_details())]
    res = measure(testbed.up("emulated-arm64"), artifact(path, "tflite", *specs), inputs, None,
                  context("emulated-arm64", tmp_path))
    assert len(res["outputs"]) == 2 and all(o["max_rel_diff"] <= 1e-5 for o in res["outputs"])
    assert res["runtime"] == "litert" and res["accuracy"] is None and res["host_agreement"] == 1.0


@pytest.mark.devices
def test_metadata_that_records_fewer_outputs_than_the_file_returns_is_refused(two_input_pte, tmp_path):
    path, labels = two_input_pte
    art = artifact(path, "pte", TWO_INPUTS, TWO_OUTPUTS[:1])
    with pytest.raises(ToolError, match=r"pte-two-inputs: its metadata records 1 outputs, the file returns 2"):
        measure(testbed.up("adb-loopback"), art, [SERIES, VECTORS], labels, context("adb-loopback", tmp_path))
