"""run_model with models of several inputs and outputs (tests/multi_tensor_models.py), on the test devices, checked
against the host's runtimes and PyTorch: seeded weights, real converters, real runtimes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ToolError
from pipeline.devices.run_model import run_model
from tests.multi_tensor_models import (
    CLASSES,
    EMBEDDING,
    MASK,
    SERIES,
    TOKEN_IDS,
    VECTORS,
    N,
    assert_outputs_differ_per_sample,
    executorch_outputs,
    in_file_order,
    keras_two_input_tflite,
    litert_outputs,
    lower_to_pte,
    per_sample,
    token_model,
    two_input_model,
)

pytestmark = pytest.mark.devices


@pytest.fixture(scope="module")
def two_input_pte(tmp_path_factory):
    """The two-input model as an XNNPACK .pte, its host ExecuTorch outputs and PyTorch's."""
    model = two_input_model()
    path = tmp_path_factory.mktemp("pte") / "two_inputs.pte"
    lower_to_pte(model, (SERIES, VECTORS), path)
    return path, executorch_outputs(path, SERIES, VECTORS), per_sample(model, SERIES, VECTORS)


@pytest.fixture(scope="module")
def two_input_tflite(tmp_path_factory):
    """The two-input model through ONNX and the project's onnx2tf adapter; inputs in the file's layout, host LiteRT
    outputs (file order) and PyTorch's outputs in that order."""
    import torch

    from pipeline.converters import onnx2tf_adapter

    model = two_input_model()
    work = tmp_path_factory.mktemp("tflite")
    examples = (torch.from_numpy(SERIES[:1]), torch.from_numpy(VECTORS[:1]))
    program = torch.onnx.export(model, examples, dynamo=True, opset_version=18, verbose=False,
                                input_names=["series", "vector"], output_names=["scores", "embedding"])
    program.save(str(work / "model.onnx"), external_data=False)
    path = onnx2tf_adapter.convert(work / "model.onnx", work / "onnx2tf", None, int8=False)["fp32"]
    # onnx2tf makes the (C, T) series channels-last and orders the file's inputs and outputs its own way
    inputs = in_file_order(path, {"series": np.ascontiguousarray(SERIES.transpose(0, 2, 1)), "vector": VECTORS})
    host = litert_outputs(path, *inputs)
    torch_out = per_sample(model, SERIES, VECTORS)
    by_width = {o.shape[1]: o for o in torch_out}
    return path, inputs, host, [by_width[o.shape[1]] for o in host]


@pytest.fixture(scope="module")
def keras_tflite(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "two_inputs.tflite"
    return path, *keras_two_input_tflite(path)


@pytest.fixture(scope="module")
def token_pte(tmp_path_factory):
    model = token_model()
    path = tmp_path_factory.mktemp("tokens") / "tokens.pte"
    lower_to_pte(model, (TOKEN_IDS, MASK), path)
    return path, executorch_outputs(path, TOKEN_IDS, MASK), per_sample(model, TOKEN_IDS, MASK)


def max_diffs(actual: list[np.ndarray], expected: list[np.ndarray]) -> list[float]:
    assert [(a.shape, a.dtype) for a in actual] == [(e.shape, e.dtype) for e in expected]
    pairs = zip(actual, expected, strict=True)
    return [float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max()) for a, e in pairs]


def test_emulated_arm64_runs_two_input_two_output_pte_like_host_executorch(emulated, two_input_pte):
    path, host, torch_out = two_input_pte
    result = run_model(emulated, path, "pte", [SERIES, VECTORS], threads=1, warmup=1, runs=2, timeout=300)
    assert [o.shape for o in result.outputs] == [(N, CLASSES), (N, EMBEDDING)]
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()
    for diff, ref in zip(max_diffs(result.outputs, torch_out), torch_out, strict=True):
        assert diff <= 1e-4 * np.abs(ref).max()
    assert result.device_info["arch"] == "aarch64" and len(result.latencies_ms) == 2


def test_emulated_arm64_runs_two_input_two_output_keras_tflite_like_host_litert(emulated, keras_tflite):
    path, inputs, host = keras_tflite
    result = run_model(emulated, path, "tflite", inputs, threads=1, warmup=1, runs=2, timeout=300)
    assert sorted(o.shape for o in result.outputs) == [(N, CLASSES), (N, EMBEDDING)]
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()


@pytest.mark.slow  # about 60 s: the onnx2tf conversion alone takes half of it
def test_emulated_arm64_runs_two_input_two_output_tflite_like_host_litert(emulated, two_input_tflite):
    path, inputs, host, torch_out = two_input_tflite
    result = run_model(emulated, path, "tflite", inputs, threads=1, warmup=1, runs=2, timeout=300)
    assert len(result.outputs) == 2
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()
    for diff, ref in zip(max_diffs(result.outputs, torch_out), torch_out, strict=True):
        assert diff <= 1e-4 * np.abs(ref).max()
    assert result.device_info["runtime"] == "litert"


def test_emulated_arm64_runs_int64_token_ids_and_bool_mask(emulated, token_pte):
    path, host, torch_out = token_pte
    result = run_model(emulated, path, "pte", [TOKEN_IDS, MASK], threads=1, warmup=0, runs=1, timeout=300)
    scores, ids = result.outputs
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert_outputs_differ_per_sample([scores])
    assert np.abs(scores - host[0]).max() <= 1e-5 * np.abs(host[0]).max()
    assert np.abs(scores - torch_out[0]).max() <= 1e-4 * np.abs(torch_out[0]).max()
    assert (ids == host[1]).all() and (ids == scores.argmax(1)).all()


def test_loopback_runs_two_input_two_output_pte_with_the_amd64_runner(loopback, two_input_pte):
    path, host, _ = two_input_pte
    result = run_model(loopback, path, "pte", (SERIES, VECTORS), threads=1, warmup=0, runs=1, timeout=120)
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([SERIES], r"1 input arrays given, the model takes 2"),
        ([SERIES, VECTORS, VECTORS], r"3 input arrays given, the model takes 2"),
        ([SERIES, VECTORS[:, :5]], r"input 1 .*per-sample shape \(5,\) differs from the model's \(6,\)"),
        ([SERIES[:, :, :30], VECTORS], r"input 0 .*per-sample shape \(4, 30\) differs from the model's \(4, 32\)"),
        ([SERIES, VECTORS.astype(np.int64)], r"input 1 .*dtype int64 differs from the model's float32"),
    ],
)
def test_inputs_that_do_not_fit_the_pte_are_one_line_naming_the_input(loopback, two_input_pte, inputs, expected):
    with pytest.raises(ToolError, match=r"^device adb-loopback: run pte runner: exit code 1: et_runner: " + expected):
        run_model(loopback, two_input_pte[0], "pte", inputs, threads=1, warmup=0, runs=1, timeout=120)


def test_inputs_that_do_not_fit_the_tflite_are_one_line_naming_the_input(emulated, keras_tflite):
    path, inputs, _ = keras_tflite
    v = next(i for i, x in enumerate(inputs) if x.ndim == 2)  # the vector's place in the file's input order
    bad = [x[:, :5] if i == v else x for i, x in enumerate(inputs)]
    with pytest.raises(ToolError) as err:
        run_model(emulated, path, "tflite", bad, threads=1, warmup=0, runs=1, timeout=300)
    message = str(err.value)
    assert message.startswith("device emulated-arm64: run tflite runner: exit code 1: litert_runner: ValueError: ")
    assert f"input {v} (" in message and "per-sample shape (5,) differs from the model's (6,)" in message
    assert "\n" not in message


def test_arrays_of_other_dtypes_or_lengths_are_refused_before_the_device_is_touched(loopback, two_input_pte):
    with pytest.raises(ToolError, match=r"input 1: a float64 array of shape \(4, 6\); expected"):
        run_model(loopback, two_input_pte[0], "pte", [SERIES, VECTORS.astype(np.float64)], threads=1, warmup=0,
                  runs=1)
    with pytest.raises(ToolError, match=r"input 1 has 3 samples, input 0 has 4"):
        run_model(loopback, two_input_pte[0], "pte", [SERIES, VECTORS[:3]], threads=1, warmup=0, runs=1)
