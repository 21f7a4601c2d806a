"""The pretrained EfficientNet-Lite0 recipe: both formats give PyTorch's top-1 labels on the bundled photos."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli, write_target


@pytest.mark.slow  # onnx2tf on a 4.65M-parameter model takes minutes here
def test_efficientnet_lite0_converts_with_the_same_labels_as_pytorch(tmp_path):
    target = write_target(tmp_path, runs=5)
    proc = cli("run", "--recipe", "efficientnet-lite0", "--target", str(target), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((tmp_path / "b" / "runs" / "efficientnet-lite0__test-host" / "report.json").read_text())
    rows = {r["name"]: r for r in rep["artifacts"]}
    for name in ("onnx-fp32", "tflite-fp32", "pte-fp32"):
        assert rows[name]["top1_agreement"] == 1.0, name
    assert rep["evaluation"]["samples"] == 14


def test_pretrained_weights_know_the_cat_and_the_coffee():
    import numpy as np
    import torch

    from pipeline.artifacts.preprocess import InputSpec, normalise_batch
    from pipeline.data import photos
    from pipeline.models.efficientnet_lite import MEAN, STD, efficientnet_lite0

    spec = InputSpec(224, 224, 3, MEAN, STD)
    images, names = photos.load(spec.to_dict())
    model = efficientnet_lite0().eval()
    with torch.no_grad():
        top1 = model(torch.from_numpy(normalise_batch(images[:2], spec))).argmax(1).tolist()
    assert names[:2] == ("chelsea", "coffee")
    assert top1 == [285, 967]  # Egyptian cat, espresso (ImageNet)
    assert np.isfinite(top1).all()
