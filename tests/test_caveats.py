"""A run says what its numbers rest on (issue 24, item 7): a split smaller than the settings ask for (calibration,
evaluation, training) and an fp32 accuracy within noise of chance are WARNING lines in the log and lines in the
report, naming the key and the numbers; a run with enough data and a trained model has none of them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from tests.conftest import cli, write_recipe, write_target
from tests.test_image_folder_input import _folder


def _tiny_folder_recipe(folder: Path) -> Path:
    """`init` on 12 colour JPEGs of four sizes (3 classes: 9 training, 3 evaluation pictures), eval_samples = 50."""
    pictures = _folder(folder / "pics", [(30, 45), (36, 48), (48, 36), (40, 40)], "jpg")
    recipe = folder / "tiny.toml"
    proc = cli("init", "--model", "mobilenet_v2_small", "--data", str(pictures), "--out", str(recipe))
    assert proc.returncode == 0, proc.stderr[-2000:]
    recipe.write_text(recipe.read_text().replace("eval_samples = 0 ", "eval_samples = 50 "))
    return recipe


def _run(recipe: Path, target: Path, build: Path, *extra: str) -> dict:
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1]).parent
    return {"log": (run_dir / "run.log").read_text(), "report": json.loads((run_dir / "report.json").read_text()),
            "markdown": (run_dir / "report.md").read_text(), "console": proc.stderr}


def _warned(run: dict, text: str) -> None:
    """`text` is a WARNING line of the run log, on the console, and a line of report.json and report.md."""
    assert any(" WARNING pipeline.data: " in line and text in line for line in run["log"].splitlines()), run["log"]
    assert text in run["console"]
    assert any(text in w for w in run["report"]["warnings"]), run["report"]["warnings"]
    assert any(line.startswith("- **") and text in line for line in run["markdown"].splitlines())


EVAL_SHORT = "data.eval_samples asks for 50 evaluation samples but the evaluation split holds 3"
EVAL_FEW = "only 3 evaluation samples (fewer than 30): accuracies are uncertain, the fp32 accuracy "
CALIBRATION_SHORT = ("data.calibration_samples asks for 200 calibration samples but the training split holds 9: "
                     "int8 calibration used 9")


def test_a_tiny_folder_run_warns_of_its_small_splits_in_the_log_and_the_report(tmp_path):
    run = _run(_tiny_folder_recipe(tmp_path), write_target(tmp_path, runs=5, build='["onnx-fp32"]'),
               tmp_path / "build")
    _warned(run, EVAL_SHORT)
    _warned(run, EVAL_FEW)
    _warned(run, "train.batch_size 64 is more than the 9 training samples: training takes 3 optimiser step(s)")
    assert run["report"]["evaluation"]["samples"] == 3
    assert not any("calibration" in w for w in run["report"]["warnings"])  # nothing was calibrated
    assert "**Warnings** (what the numbers below rest on):" in run["markdown"]


def test_calibration_on_fewer_pictures_than_asked_is_a_warning_naming_the_key_and_both_numbers(tmp_path, caplog):
    from pipeline import data
    from pipeline.engine.recipes import load_recipe

    recipe_path = _tiny_folder_recipe(tmp_path)
    recipe = load_recipe(str(recipe_path))
    calibration = data.calibration_images(recipe)
    assert len(calibration) == 9
    with caplog.at_level(logging.WARNING, logger="pipeline.data"):
        said = data.caveats.calibration(recipe, len(calibration))
    assert len(said) == 1 and said[0].startswith(CALIBRATION_SHORT)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == said
    recipe_path.write_text(recipe_path.read_text().replace("calibration_samples = 200", "calibration_samples = 9"))
    assert data.caveats.calibration(load_recipe(str(recipe_path)), len(calibration)) == []


@pytest.mark.slow  # int8 calibration, ExecuTorch lowering and a benchmark: about 2 minutes on 2 busy cores
def test_a_tiny_folder_run_with_int8_reports_the_calibration_shortfall_once(tmp_path):
    run = _run(_tiny_folder_recipe(tmp_path), write_target(tmp_path, runs=5, build='["onnx-fp32", "pte-int8"]'),
               tmp_path / "build")
    _warned(run, CALIBRATION_SHORT)
    _warned(run, EVAL_SHORT)
    assert sum(CALIBRATION_SHORT in w for w in run["report"]["warnings"]) == 1


CHANCE = "the fp32 model's accuracy 0.1000 on 2000 evaluation samples is within noise of chance (0.1000 for 10 " \
         "classes, +-0.0131 at 95%)"


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> dict:
    """The reduced Fashion-MNIST recipe (6,000 training pictures, 2 epochs) without pruning, 2,000 evaluation pictures,
    and an untrained model's weights."""
    from pipeline.engine.recipes import load_recipe
    from pipeline.models import sources

    folder = tmp_path_factory.mktemp("chance")
    recipe = write_recipe(folder, "chance", **{"data.eval_samples": "2000", "prune.enabled": "false"})
    torch.manual_seed(0)
    untrained = folder / "untrained.pt"
    torch.save(sources.build(load_recipe(str(recipe)).data["model_spec"]).state_dict(), untrained)
    return {"recipe": recipe, "target": write_target(folder, runs=5, build='["onnx-fp32"]'),
            "build": folder / "build", "untrained": untrained}


def test_an_untrained_model_at_chance_is_warned_of_with_accuracy_chance_and_samples(fashion):
    run = _run(fashion["recipe"], fashion["target"], fashion["build"], "--set", "weights.source=state_dict",
               "--set", f"weights.path={fashion['untrained']}")
    assert run["report"]["evaluation"]["fp32_accuracy"] == pytest.approx(0.1)  # it gives one class for everything
    _warned(run, CHANCE)
    assert run["report"]["warnings"] == [w for w in run["report"]["warnings"] if "chance" in w]  # nothing else


@pytest.mark.slow  # 6,000 pictures for 2 epochs: 15 s of training on a quiet machine, 90 s on 2 busy cores
def test_a_trained_model_is_not_warned_of(fashion):
    run = _run(fashion["recipe"], fashion["target"], fashion["build"])
    assert run["report"]["evaluation"]["fp32_accuracy"] > 0.5  # far above chance plus its margin (0.113)
    assert run["report"]["warnings"] == []
    assert "WARNING pipeline.data" not in run["log"] and "**Warnings**" not in run["markdown"]
