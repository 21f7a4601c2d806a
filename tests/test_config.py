"""Recipes and targets are validated at the door: exit code 2 and one line naming the file and the key."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target
from tests.conftest import DEFAULT_RECIPE, cli, write_recipe


def test_bundled_recipes_and_targets_validate():
    from pipeline.models import build
    from pipeline.recipe.files import RECIPES_DIR, TARGETS_DIR, list_configs

    assert load_recipe("fashion-mnist-mobilenetv2").data["train"]["epochs"] == 3.0
    assert load_target("host").data["device"]["kind"] == "host"
    for path in list_configs(RECIPES_DIR):
        recipe = load_recipe(str(path))
        settings = dict(recipe.data["model"]["settings"])
        if recipe.data["model"]["arch"] == "efficientnet_lite0":
            settings["pretrained"] = False
        assert build(recipe.data["model"]["arch"], **settings) is not None, path.name
    assert {load_target(str(p)).name for p in list_configs(TARGETS_DIR)} >= {"host", "emulated-arm64", "adb-loopback"}


@pytest.mark.parametrize("override,key,words", [
    ({"train.epochs": "-1"}, "train.epochs", "must be > 0"),
    ({"train.schedule": '"linear"'}, "train.schedule", "is not one of"),
    ({"train.epocs": "2"}, "train.epocs", "did you mean 'epochs'"),
    ({"model.arch": '"vgg"'}, "model.arch", "is not one of"),
    ({"train.batch_size": '"64"'}, "train.batch_size", "expected an integer"),
    ({"weights.source": '"state_dict"'}, "weights.path", "required"),
    ({"data.dataset": '"photos"', "weights.source": '"pretrained"', "model.arch": '"efficientnet_lite0"'},
     "model.settings.in_channels", "takes no setting 'in_channels'"),
])
def test_bad_recipe_exits_2_naming_the_key(tmp_path, override, key, words):
    recipe = write_recipe(tmp_path, "bad", **override)
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert str(recipe) in line and key in line and words in line, line
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "b" / "cache").exists()  # nothing started, nothing half-written


def test_pruning_unlabelled_photos_is_refused(tmp_path):
    from pipeline.recipe.files import RECIPES_DIR

    recipe = tmp_path / "photos-prune.toml"
    recipe.write_text((RECIPES_DIR / "efficientnet-lite0.toml").read_text() + "\n[prune]\nenabled = true\n")
    with pytest.raises(ConfigError, match="prune.enabled: pruning is recovered by fine-tuning .* lacks"):
        load_recipe(str(recipe))


def test_toml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text(DEFAULT_RECIPE.read_text() + "\n[train\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_recipe(str(bad))


def test_unknown_target_lists_the_known_ones():
    proc = cli("run", "--target", "pixel-9-pro-max")
    assert proc.returncode == 2 and "no such target" in proc.stderr and "host" in proc.stderr


def test_bad_target_value_names_the_key(tmp_path):
    t = tmp_path / "t.toml"
    t.write_text('[target]\nname = "x"\n[benchmark]\nruns = 0\n')
    with pytest.raises(ConfigError, match=r"t.toml: benchmark.runs: 0 is not allowed \(must be > 0\)"):
        load_target(str(t))


def test_help_shows_examples():
    proc = cli("run", "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "--from" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (("run", "--threads", "0"), "--threads: 0 is not allowed"),
    (("run", "--threads", "two"), "--threads: 'two' is not a whole number"),
    (("verify",), "required: bundle"),
    (("deploy",), "invalid choice: 'deploy'"),
])
def test_command_line_mistakes_are_one_line_naming_the_argument(args, words):
    proc = cli(*args)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and words in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_a_model_that_cannot_take_the_dataset_fails_before_training(tmp_path):
    recipe = write_recipe(tmp_path, "classes", **{"model.settings.num_classes": "7"})
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: classes.toml: model: architecture 'mobilenet_v2_small' gives outputs of shape [2, 7] but the "
        "dataset 'fashion-mnist' has 10 classes; make it return [batch, 10] (e.g. num_classes = 10 in "
        "[model.settings])")
    assert not list((tmp_path / "b" / "cache").glob("train/*/model.pt"))
