"""What a user or a file from outside can get wrong is refused at the door: exit 2, one line naming the file and the
key, no traceback, nothing written (issues 8 and 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target
from tests.conftest import ROOT, cli, write_recipe

USER_MODELS = ROOT / "tests" / "user_models"


def python_recipe(folder, entry: str, settings: str = "num_classes = 10", extra: str = "") -> object:
    path = folder / "user.toml"
    path.write_text(f"""[recipe]
name = "user"
[model]
source = "python"
entry = "{entry}"
[model.settings]
{settings}
[data]
dataset = "fashion-mnist"
eval_samples = 100
[train]
epochs = 1
max_train_samples = 256
{extra}""")
    return path


def _one_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("entry, settings, key, words", [
    ("shuffle_net.py", "", "model.entry", "is not of the form 'path/to/file.py:build_fn'"),
    ("{models}/missing.py:build", "", "model.entry", "is not a file"),
    ("{models}/shuffle_net.py:nope", "", "model.entry", "has no function 'nope' (it defines: "),
    ("no_such_package.module:build", "", "model.entry", "importing module 'no_such_package.module' failed"),
    ("{models}/shuffle_net.py:build", "widht = 16", "model.settings.widht", "did you mean 'width'?"),
])
def test_a_wrong_python_entry_is_refused_naming_the_key(tmp_path, entry, settings, key, words):
    recipe = python_recipe(tmp_path, entry.format(models=USER_MODELS), settings)
    with pytest.raises(ConfigError) as info:
        load_recipe(str(recipe))
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_a_syntax_error_in_the_user_file_names_the_line(tmp_path):
    bad = tmp_path / "bad_net.py"
    bad.write_text("import torch\n\ndef build(:\n    pass\n")
    with pytest.raises(ConfigError, match=r"bad_net.py:3: syntax error"):
        load_recipe(str(python_recipe(tmp_path, "bad_net.py:build", "")))


@pytest.mark.parametrize("fn, words", [
    ("broken", "building model.entry '{entry}' failed: ValueError: this factory always fails"),
    ("not_a_module", "returned list, not a torch.nn.Module"),
    ("wants_rgb", "cannot take the dataset's input [2, 1, 28, 28] (set by [input])"),
])
def test_a_builder_that_fails_or_does_not_fit_stops_the_run_in_one_line(tmp_path, fn, words):
    entry = f"{USER_MODELS}/shuffle_net.py:{fn}"
    recipe = python_recipe(tmp_path, entry)
    line = _one_line(cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b")))
    assert words.format(entry=entry) in line, line
    assert not list((tmp_path / "b" / "cache").glob("train/*/model.pt"))


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "is not UTF-8 text"),
    ("[recipe]\nname = 'x'\n".encode("utf-16"), "is not UTF-8 text"),
    (b"[recipe]\nname = 'x'\n[train]\nseed = 99999999999999999999\n",
     "train.seed: 99999999999999999999 is out of range"),
    (b"[recipe]\nname = 'x'\n[train]\nseed = 9999999999\n", "train.seed: 9999999999 is not allowed (must be 0 to"),
    (b"[recipe]\nname = 'x'\n[train]\nepochs = inf\n", "train.epochs: inf is not allowed (must be a finite"),
    (b"[recipe]\nname = 'x'\n[train]\nlr = nan\n", "train.lr: nan is not allowed (must be a finite number)"),
    (b"[recipe]\nname = 'x'\n[model.settings]\nwidth = -inf\n", "model.settings.width: -inf is not allowed"),
    (b"[recipe]\nname = 'x'\nversion = '1/2'\n", "recipe.version: '1/2' is not allowed"),
    (b"[recipe]\nname = '../x'\n", "recipe.name: '../x' is not allowed"),
])
def test_hostile_recipe_files_are_one_line(tmp_path, content, words):
    recipe = tmp_path / "hostile.toml"
    recipe.write_bytes(content)
    with pytest.raises(ConfigError) as info:  # in-process: the CLI's one-line path is tested just below
        load_recipe(str(recipe))
    line = f"error: {info.value}"
    assert str(recipe) in line and words in line and "\n" not in line, line


def test_a_hostile_recipe_through_the_cli_is_exit_2_and_writes_nothing(tmp_path):
    recipe = tmp_path / "hostile.toml"
    recipe.write_bytes(b"[recipe]\nname = 'x'\n[train]\nepochs = inf\n")
    line = _one_line(cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b")))
    assert line == f"error: {recipe}: train.epochs: inf is not allowed (must be a finite number)"
    assert not (tmp_path / "b").exists()


def test_a_model_file_given_as_the_recipe_is_refused_with_a_hint(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(bytes(range(256)) * 4)
    line = _one_line(cli("run", "--recipe", str(model), "--build-dir", str(tmp_path / "b")))
    assert "model.onnx: is not UTF-8 text" in line and "model.path" in line


def test_a_folder_as_the_recipe_or_the_weights_is_refused(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    assert "dir.toml: is a folder" in _one_line(cli("run", "--recipe", str(tmp_path / "dir.toml")))
    (tmp_path / "weights").mkdir()
    recipe = write_recipe(tmp_path, "w", **{"weights.source": '"state_dict"', "weights.path": '"weights"'})
    with pytest.raises(ConfigError, match="weights.path: .*weights is not a file"):
        load_recipe(str(recipe))


def test_a_target_name_that_would_leave_the_runs_folder_is_refused(tmp_path):
    target = tmp_path / "t.toml"
    target.write_text('[target]\nname = "../../../somewhere"\n')
    with pytest.raises(ConfigError, match=r"target.name: '../../../somewhere' is not allowed"):
        load_target(str(target))


def test_weights_with_nan_values_are_refused(tmp_path):
    from pipeline.models import build

    model = build("resnet_small", num_classes=10, in_channels=1, widths=[8, 16])
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "nan.pt")
    recipe = tmp_path / "nan.toml"
    recipe.write_text("""[recipe]
name = "nan"
[model]
arch = "resnet_small"
[model.settings]
num_classes = 10
in_channels = 1
widths = [8, 16]
[weights]
source = "state_dict"
path = "nan.pt"
[data]
eval_samples = 50
""")
    line = _one_line(cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b")))
    assert "nan.pt: tensor 'stem.0.weight' holds NaN or infinite values" in line, line


def test_pictures_reach_the_model_with_standard_strides():
    """One-channel batches were transposed views whose strides made torch treat them as channels_last, so a conv
    output was not contiguous and a user's `x.view(n, -1)` failed; batches are real NCHW copies now."""
    from pipeline.artifacts.preprocess import InputSpec
    from pipeline.data import to_tensor

    x = torch.from_numpy(to_tensor(np.zeros((4, 28, 28), np.uint8), InputSpec(28, 28, 1, (0.5,), (0.5,))))
    assert x.stride() == (784, 784, 28, 1)
    y = torch.nn.Conv2d(1, 8, 3)(x)
    assert y.is_contiguous() and y.view(4, -1).shape == (4, 8 * 26 * 26)


def test_a_bug_in_a_stage_is_one_line_exit_1_with_the_traceback_in_a_log(tmp_path, monkeypatch, capsys):
    from pipeline import cli

    def boom(model, example):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr("pipeline.stages.train.count_macs", boom)  # the MAC count at the end of training
    recipe = write_recipe(tmp_path, "bug", **{"train.max_train_samples": "256", "train.epochs": "1",
                                               "data.eval_samples": "50"})
    code = cli.main(["run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("error: stage train failed with an internal error (ZeroDivisionError: a bug of ours)")
    log = Path(err.split("the traceback is in ")[1].split(";")[0])
    assert log.parent == tmp_path / "b" / "logs" and "Traceback" in log.read_text() and "boom" in log.read_text()


def test_mnist_is_the_real_mnist_from_its_package():
    from pipeline.data import eval_split, train_split

    recipe_path = ROOT / "tests" / "user_models" / "mnist-probe.toml"
    recipe_path.write_text('[recipe]\nname = "m"\n[model]\narch = "resnet_small"\n[data]\ndataset = "mnist"\n')
    try:
        recipe = load_recipe(str(recipe_path))
    finally:
        recipe_path.unlink()
    test, train = eval_split(recipe), train_split(recipe)
    assert test.images.shape == (10000, 28, 28) and train.images.shape == (60000, 28, 28)
    assert test.labels[:3].tolist() == [7, 2, 1] and recipe.data["input"]["mean"] == [0.1307]
