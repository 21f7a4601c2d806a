"""Loading weights: a user state_dict for a registered architecture (weights_only), with clear errors."""

from __future__ import annotations

import pytest
import torch

from pipeline.models import build
from tests.conftest import cli, write_recipe, write_target


def _state_dict_recipe(tmp_path, weights_file: str):
    return write_recipe(tmp_path, "user-weights", **{"weights.source": '"state_dict"',
                                                     "weights.path": f'"{weights_file}"'})


def test_user_state_dict_is_loaded_and_evaluated(e2e, tmp_path):
    # The shared run's trained weights, saved as a user would save them.
    trained = next(a for s in e2e["manifest"]["stages"] for a in s["artifacts"] if a["name"] == "torch-fp32")
    state = torch.load(trained["path"], weights_only=True)
    torch.save(state, tmp_path / "mine.pt")
    recipe = _state_dict_recipe(tmp_path, "mine.pt")
    target = write_target(tmp_path, build='["onnx-fp32"]')
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    rep = json.loads((tmp_path / "b" / "runs" / "user-weights__test-host" / "report.json").read_text())
    rows = {r["name"]: r for r in rep["artifacts"]}
    shared = {r["name"]: r for r in e2e["report"]["artifacts"]}
    assert rows["torch-fp32"]["accuracy"] == shared["torch-fp32"]["accuracy"]
    assert rows["onnx-fp32"]["top1_agreement"] == 1.0


def test_state_dict_of_another_architecture_is_refused_in_one_line(tmp_path):
    torch.save(build("resnet_small").state_dict(), tmp_path / "resnet.pt")
    recipe = _state_dict_recipe(tmp_path, "resnet.pt")
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "resnet.pt: does not fit the recipe's architecture" in last and "missing (e.g. " in last
    assert len(last) < 400 and "Traceback" not in proc.stderr
    assert not any((tmp_path / "b" / "cache").glob("train/*/model.pt"))


def test_pickled_module_is_refused(tmp_path):
    torch.save(build("mobilenet_v2_small"), tmp_path / "whole-module.pt")  # pickles code: weights_only refuses
    recipe = _state_dict_recipe(tmp_path, "whole-module.pt")
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "whole-module.pt: holds pickled Python objects (" in last and "model.state_dict()" in last


@pytest.mark.parametrize("content, words", [
    (b"not a checkpoint", "not a PyTorch state_dict file"),
    ("tensor", "holds a Tensor, not a state_dict"),
    ("narrow", "shape differs (e.g. "),
])
def test_unusable_weight_files_are_refused_in_one_line_saying_why(tmp_path, content, words):
    path = tmp_path / "w.pt"
    if content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content == "narrow":
        torch.save(build("mobilenet_v2_small", head_channels=64).state_dict(), path)
    else:
        path.write_bytes(content)
    proc = cli("run", "--recipe", str(_state_dict_recipe(tmp_path, "w.pt")), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert words in proc.stderr.strip().splitlines()[-1]
