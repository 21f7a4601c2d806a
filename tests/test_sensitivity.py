"""int8 sensitivity and float fallback on a model built to break int8: one tensor with a huge outlier channel.

The model (pipeline/evidence/outlier_fallback.py, where `make evidence-fallback` measures what fallback costs) is
trained on a small synthetic task; then channel 0 of layer `2`'s output is scaled by 1000 and the next layer's
weights for it by 1/1000, so the float function is unchanged but the per-tensor int8 range of that tensor swallows
every other channel. Sensitivity must rank the layers around that tensor first, and fallback must
bring int8 accuracy back, checked in the lowered .pte running in ExecuTorch, not only in PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.compression.quantization import ptq
from pipeline.compression.sensitivity import fallback, rank
from pipeline.evidence.outlier_fallback import outlier_model as build_outlier_model
from pipeline.evidence.outlier_fallback import task


@pytest.fixture(scope="module")
def outlier_model() -> nn.Module:
    return build_outlier_model()


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_sensitivity_ranks_the_outlier_layers_first_and_fallback_restores_int8(outlier_model, tmp_path):
    from pipeline.artifacts.artifact import Artifact
    from pipeline.converters.executorch_lowering import lower
    from pipeline.runtimes import open_session

    calib, _ = task(128, 1)
    x, y = task(600, 2)
    fp32 = _accuracy(outlier_model, x, y)
    all_int8 = _accuracy(ptq(outlier_model, calib), x, y)
    assert fp32 > 0.6 and all_int8 < fp32 - 0.2  # the trap works: int8 ruins it

    ranking = rank(outlier_model, calib, calib[:64])
    order = [r["layer"] for r in ranking["layers"]]
    assert set(order[:2]) == {"2", "4"}, ranking  # the producer and the consumer of the outlier tensor
    assert ranking["layers"][0]["sqnr_db"] < 10 < ranking["layers"][-1]["sqnr_db"]

    converted, kept = fallback(outlier_model, calib, ranking, lambda m: _accuracy(m, x, y) >= fp32 - 0.02, 3)
    assert set(kept) == {"2", "4"}
    assert _accuracy(converted, x, y) >= fp32 - 0.02

    # the same in the .pte: the float layers run in float inside XNNPACK, the rest stays int8
    buffer, summary = lower(converted, x[:1])
    path = tmp_path / "fallback.pte"
    path.write_bytes(buffer)
    art = Artifact(name="pte-int8-fallback", path=str(path), format="pte", precision="int8", layout="NCHW",
                   input_shape=(1, 1, 16, 16))
    session = open_session(art)
    logits = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
    assert float((logits.argmax(1) == y.numpy()).mean()) >= fp32 - 0.03
    assert summary["non_delegated_ops"] == 0, summary


def test_fallback_refuses_a_layer_the_model_does_not_have(outlier_model):
    with pytest.raises(ValueError, match="no convolution or linear layer named 'nope'"):
        ptq(outlier_model, task(8, 1)[0], float_modules=("nope",))


@pytest.mark.slow
def test_quantize_stage_falls_back_and_records_it(e2e, tmp_path, test_target):
    import json

    from tests.conftest import cli, write_recipe

    # a limit of 0 points: fallback keeps the most sensitive layers float, in ranking order, until the int8 model
    # ties fp32 or two are float (then it says it still fails), and ships the same ones float in the .pte and in the
    # int8 TFLite file; the run finishes (--no-gates) so both are evaluated. On 400 images one float layer can tie
    # or beat fp32 (it did once: 79.75% against 79.50%), so either ending is checked for what it must say.
    recipe = write_recipe(tmp_path, "tiny", **{"quantize.methods": '["ptq"]', "quantize.fallback": '"auto"',
                                              "quantize.max_accuracy_drop": "0.0", "quantize.max_float_layers": "2"})
    proc = cli("run", "--recipe", str(recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]),
               "--no-gates")
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "manifest.json").read_text())
    data = next(r for r in manifest["stages"] if r["name"] == "quantize")["data"]
    fb = data["fallback"]
    ranking = [r["layer"] for r in data["sensitivity"]["layers"]]
    kept = fb["float_layers"]
    assert fb["applied"] and 1 <= len(kept) <= 2 and kept == ranking[:len(kept)], fb
    if fb["passed"]:
        assert fb["accuracy"] >= fb["fp32_accuracy"] and "still more than" not in proc.stderr, fb
    else:
        assert len(kept) == 2 and "still more than" in proc.stderr, fb  # says so, with the numbers
    arts = {a["name"]: a for r in manifest["stages"] for a in r["artifacts"]}
    for name in ("pte-pruned-int8-ptq", "tflite-pruned-int8-ptq"):  # both runtimes keep the same layers float
        assert f"kept in float: {', '.join(kept)}" in arts[name]["extra"]["quantized_by"], name
    assert len(arts["tflite-pruned-int8-ptq"]["extra"]["float_tensors"]) == len(kept)
    rep = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "report.json").read_text())
    assert {r["name"]: r for r in rep["artifacts"]}["tflite-pruned-int8-ptq"]["accuracy"] is not None


def test_tflite_keeps_the_same_layers_float_and_recovers(outlier_model, tmp_path):
    """The TFLite route: onnx2tf's SavedModel requantized by TensorFlow with the fallback layers denylisted."""
    import onnx

    from pipeline.artifacts.artifact import Artifact
    from pipeline.converters import onnx2tf_adapter, tflite_fallback
    from pipeline.converters.onnx_export import export
    from pipeline.layers.onnx_layers import node_module
    from pipeline.runtimes import open_session
    from pipeline.runtimes.tflite_file import io_quantization

    calib, _ = task(128, 1)
    x, y = task(600, 2)
    fp32 = _accuracy(outlier_model, x, y)
    onnx_path = tmp_path / "outlier.onnx"
    export(outlier_model, x[:1], onnx_path, 18)
    nhwc = np.ascontiguousarray(calib.numpy().transpose(0, 2, 3, 1))
    files = onnx2tf_adapter.convert(onnx_path, tmp_path / "work", nhwc, int8=True)
    float_nodes = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"
                   and node_module(n) in ("2", "4")]
    assert len(float_nodes) == 2
    np.save(tmp_path / "calib.npy", nhwc)
    out = tmp_path / "fallback.tflite"
    kept = tflite_fallback.convert(tmp_path / "work" / "tf", tmp_path / "calib.npy", onnx_path, float_nodes, out)
    assert len(kept) == 2

    def accuracy(path: Path) -> float:
        dtype, in_q, out_q = io_quantization(path)
        art = Artifact(name=path.stem, path=str(path), format="tflite", precision="int8", layout="NHWC",
                       input_shape=(1, 16, 16, 1), input_dtype=dtype, input_quantization=in_q,
                       output_quantization=out_q)
        session = open_session(art)
        logits = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
        return float((logits.argmax(1) == y.numpy()).mean())

    assert accuracy(files["int8"]) < fp32 - 0.2  # onnx2tf's full-integer file falls into the trap too
    assert accuracy(out) >= fp32 - 0.03
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out))
    dtypes = {d["name"]: d["dtype"] for d in interp.get_tensor_details()}
    assert all(dtypes[name] == np.float32 for name in kept)  # those convs run in float, the rest in int8
    assert interp.get_input_details()[0]["dtype"] == np.int8
