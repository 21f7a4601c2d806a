"""int8 sensitivity and float fallback on a model built to break int8: one tensor with a huge outlier channel.

The model is trained on a small synthetic task; then channel 0 of layer `2`'s output is scaled by 1000 and the
next layer's weights for it by 1/1000, so the float function is unchanged but the per-tensor int8 range of that
tensor swallows every other channel. Sensitivity must rank the layers around that tensor first, and fallback must
bring int8 accuracy back, checked in the lowered .pte running in ExecuTorch, not only in PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.compression.quantization import ptq
from pipeline.compression.sensitivity import fallback, rank


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    protos = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return protos[y] + 0.8 * torch.randn(n, 1, 16, 16, generator=g), y


@pytest.fixture(scope="module")
def outlier_model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for step in range(150):
        x, y = _task(64, 100 + step)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():  # ReLU is positively homogeneous: the float model computes the same function
        net[2].weight[0] *= 1000
        net[2].bias[0] *= 1000
        net[4].weight[:, 0] /= 1000
    return net


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_sensitivity_ranks_the_outlier_layers_first_and_fallback_restores_int8(outlier_model, tmp_path):
    from pipeline.artifact import Artifact
    from pipeline.converters.executorch_lowering import lower
    from pipeline.runtimes import open_session

    calib, _ = _task(128, 1)
    x, y = _task(600, 2)
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
        ptq(outlier_model, _task(8, 1)[0], float_modules=("nope",))


@pytest.mark.slow
def test_quantize_stage_falls_back_and_records_it(e2e, tmp_path, test_target):
    import json

    from tests.conftest import cli, write_recipe

    # an impossible limit: fallback must try the two most sensitive layers, say it still fails, and ship them float
    recipe = write_recipe(tmp_path, "tiny", **{"quantize.methods": '["ptq"]', "quantize.fallback": '"auto"',
                                              "quantize.max_accuracy_drop": "0.0", "quantize.max_float_layers": "2"})
    proc = cli("run", "--recipe", str(recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]),
               "--only", "train,prune,quantize")
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "manifest.json").read_text())
    data = next(r for r in manifest["stages"] if r["name"] == "quantize")["data"]
    fb = data["fallback"]
    ranking = [r["layer"] for r in data["sensitivity"]["layers"]]
    assert fb["applied"] and fb["float_layers"] == ranking[:2], fb
    assert "still more than" in proc.stderr  # says so, with the numbers
    pte = next(a for r in manifest["stages"] for a in r["artifacts"] if a["name"] == "pte-pruned-int8-ptq")
    assert f"kept in float: {', '.join(ranking[:2])}" in pte["extra"]["quantized_by"]
