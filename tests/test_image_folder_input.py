"""An image folder without [input]: the model input is chosen from the folder as a whole and capped, not taken from
its first picture (issue 23, cause 11); `init` chooses the same way."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from PIL import Image

from pipeline.engine.recipes import load_recipe
from tests.conftest import cli


def _folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """Two classes; picture i of each has sizes[i] as (height, width); names sort in that order."""
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.new("RGB", (w, h), (i * 10, 80, 160)).save(root / cls / f"{i:03d}.png")
    return root


def _recipe(folder: Path, pictures: Path) -> Path:
    path = folder / "pics.toml"
    path.write_text(f'[recipe]\nname = "pics"\n[model]\narch = "mobilenet_v2_small"\n[model.settings]\n'
                    f'num_classes = 2\n[data]\ndataset = "image-folder"\npath = "{pictures}"\n')
    return path


def test_one_huge_first_picture_does_not_set_the_input_size(tmp_path, caplog):
    pictures = _folder(tmp_path / "pics", [(3000, 3000)] + [(48, 64)] * 6)
    with caplog.at_level(logging.INFO, logger="pipeline.recipe.inputs"):
        spec = load_recipe(str(_recipe(tmp_path, pictures))).data["input"]
    assert (spec["height"], spec["width"], spec["channels"]) == (48, 64, 3)
    assert "model input 48x64, the median size of 12 of 12 training pictures" in caplog.text, caplog.text


def test_large_pictures_are_scaled_down_to_the_cap_with_a_warning(tmp_path, caplog):
    pictures = _folder(tmp_path / "pics", [(3000, 2000)] * 3)
    with caplog.at_level(logging.INFO, logger="pipeline.recipe.inputs"):
        spec = load_recipe(str(_recipe(tmp_path, pictures))).data["input"]
    assert (spec["height"], spec["width"]) == (512, 341)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and "median size 3000x2000 is scaled down to 512x341" in warned[0].getMessage()


def test_init_chooses_the_same_size_and_says_how(tmp_path):
    pictures = _folder(tmp_path / "pics", [(3000, 3000)] + [(48, 64)] * 6)
    out = tmp_path / "mine.toml"
    proc = cli("init", "--model", "mobilenet_v2_small", "--data", str(pictures), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert (tomllib.loads(text)["input"]["height"], tomllib.loads(text)["input"]["width"]) == (48, 64)
    assert "# height and width: the median size of up to 64 training pictures, scaled down to at most 512" in text


def test_a_size_set_in_the_recipe_is_used_without_a_note(tmp_path, caplog):
    pictures = _folder(tmp_path / "pics", [(3000, 3000)] * 3)
    recipe = _recipe(tmp_path, pictures)
    recipe.write_text(recipe.read_text() + "[input]\nheight = 32\nwidth = 40\n")
    with caplog.at_level(logging.INFO, logger="pipeline.recipe.inputs"):
        spec = load_recipe(str(recipe)).data["input"]
    assert (spec["height"], spec["width"]) == (32, 40) and not caplog.records
