"""Pruning removes channels for real and every runtime keeps parity on the pruned network."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.compression.pruning import PruneSettings, count, prune
from pipeline.converters import onnx2tf_adapter
from pipeline.converters.executorch_lowering import lower
from pipeline.converters.onnx_export import export
from pipeline.models import build
from pipeline.models.checkpoint import load_state_dict, save_state_dict
from pipeline.models.reshape import fit_to_state_dict
from pipeline.runtimes import open_session
from tests.networks import ZooNet, assert_outputs_differ_per_input, calibrate_batchnorm, varied_inputs

torch.manual_seed(0)


def _inputs(shape: tuple[int, ...], n: int = 8) -> torch.Tensor:
    return varied_inputs(n, shape[1:], seed=99)


def _artifact(path: Path, fmt: str, layout: str, shape: tuple[int, ...]) -> Artifact:
    return Artifact(name=fmt, path=str(path), format=fmt, precision="fp32", layout=layout, input_shape=shape)


def _runtime_outputs(model: torch.nn.Module, shape: tuple[int, ...], work: Path, tflite: bool) -> dict:
    """Outputs of ONNX Runtime, ExecuTorch and (optionally) LiteRT for the same inputs."""
    x = _inputs(shape).numpy()
    export(model, torch.zeros(shape), work / "m.onnx", 20)
    (work / "m.pte").write_bytes(lower(model, torch.zeros(shape))[0])
    arts = {"onnx": _artifact(work / "m.onnx", "onnx", "NCHW", shape),
            "pte": _artifact(work / "m.pte", "pte", "NCHW", shape)}
    if tflite:
        calib = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        files = onnx2tf_adapter.convert(work / "m.onnx", work / "tf", calib, int8=False)
        n, c, h, w = shape
        arts["tflite"] = _artifact(files["fp32"], "tflite", "NHWC", (n, h, w, c))
    return {k: np.concatenate([open_session(a).run(x[i : i + 1]) for i in range(len(x))]) for k, a in arts.items()}


def _check_parity(model: torch.nn.Module, shape: tuple[int, ...], work: Path, tflite: bool,
                  varies: float = 0.005) -> None:
    with torch.no_grad():
        ref = model(_inputs(shape)).numpy()
    scale = np.abs(ref).max()
    assert scale > 1e-3, "reference outputs too small for a meaningful comparison"
    # random networks: the top-1 class may be one for all inputs, so the relative difference (1e-4) carries the
    # check, and it needs outputs that move with the input by more than that
    assert_outputs_differ_per_input(ref, rel=varies, classes=False)
    for runtime, got in _runtime_outputs(model, shape, work, tflite).items():
        rel = np.abs(got - ref).max() / scale
        assert rel < 1e-4, f"{runtime}: relative max diff {rel:.2e}"
        assert (got.argmax(1) == ref.argmax(1)).all(), runtime


def test_zoo_network_pruned_keeps_structure_and_parity_in_every_runtime(tmp_path):
    shape = (1, 3, 32, 32)
    model = calibrate_batchnorm(ZooNet(), [varied_inputs(16, (3, 32, 32), seed=i) for i in range(4)])
    pruned, rep = prune(copy.deepcopy(model), torch.zeros(shape), PruneSettings(ratio=0.5, round_to=4))
    assert rep["after"]["macs"] < 0.6 * rep["before"]["macs"]
    assert pruned.stem[0].out_channels < 32 and pruned.stem[0].out_channels % 4 == 0
    assert pruned.dw[0].groups == pruned.dw[0].out_channels  # depthwise stays depthwise
    assert pruned.grouped[0].groups == 4 and pruned.grouped[0].out_channels % 4 == 0  # shuffle still valid
    assert pruned.classifier.out_features == 10  # the classifier is kept
    assert pruned.head[0].in_channels == pruned.branch_a[0].out_channels + pruned.branch_b[0].out_channels
    _check_parity(pruned, shape, tmp_path, tflite=True)


def test_geffnet_mobilenetv3_pruned_keeps_parity(tmp_path):
    import geffnet

    geffnet.config.set_exportable(True)
    geffnet.config.set_no_jit(True)
    shape = (1, 3, 64, 64)
    model = calibrate_batchnorm(geffnet.mobilenetv3_small_100(num_classes=10),
                                [varied_inputs(16, (3, 64, 64), seed=i) for i in range(4)])
    pruned, rep = prune(model, torch.zeros(shape), PruneSettings(ratio=0.3, round_to=8))
    assert rep["after"]["params"] < rep["before"]["params"]
    _check_parity(pruned, shape, tmp_path, tflite=False, varies=0.001)  # deep and random: 4 outputs move < 0.5%


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor", "bn_scale"])
def test_each_importance_reaches_the_mac_target(importance):
    model = build("mobilenet_v2_small", stem_stride=2)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    _, rep = prune(model, torch.zeros(1, 1, 28, 28), PruneSettings(macs_factor=2.0, importance=importance),
                   batches=lambda: iter([(x, y)]))
    assert rep["reached"] and rep["macs_reduction"] >= 2.0
    assert all(v["out_after"] % 8 == 0 for v in rep["layers"] if v["name"] != "classifier")


def test_pruned_model_reloads_weights_only_into_the_registered_architecture(tmp_path):
    settings = {"stem_stride": 2}
    model = calibrate_batchnorm(build("mobilenet_v2_small", **settings), [torch.randn(16, 1, 28, 28)])
    pruned, _ = prune(model, torch.zeros(1, 1, 28, 28), PruneSettings(ratio=0.4))
    save_state_dict(pruned, tmp_path / "p.pt")
    reloaded = load_state_dict(build("mobilenet_v2_small", **settings), tmp_path / "p.pt", pruned=True)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned(x))
    assert count(reloaded, torch.zeros(1, 1, 28, 28)) == count(pruned, torch.zeros(1, 1, 28, 28))


def test_fit_to_state_dict_handles_the_zoo_network():
    model = calibrate_batchnorm(ZooNet(), [torch.randn(8, 3, 32, 32)])
    pruned, _ = prune(copy.deepcopy(model), torch.zeros(1, 3, 32, 32), PruneSettings(ratio=0.5, round_to=4))
    fresh = fit_to_state_dict(ZooNet(), pruned.state_dict())
    fresh.load_state_dict(pruned.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), pruned(x))


def test_keeping_an_unknown_layer_is_an_error():
    with pytest.raises(KeyError, match="no module named 'fc'"):
        prune(build("mobilenet_v2_small"), torch.zeros(1, 1, 28, 28), PruneSettings(ratio=0.3, ignore=("fc",)))
