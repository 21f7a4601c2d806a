"""An image folder without [input]: the model input is chosen from the folder as a whole (the median short side of
its pictures, capped and rounded, square unless every picture has one shape), not taken from its first picture
(issue 23, cause 11; issue 24, item 7); `init` chooses the same way, says how in a comment, and writes the mean and
std it measured on the training pictures."""

from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.engine.recipes import load_recipe
from tests.conftest import cli

PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}  # scikit-image's real photographs
ONNX_LIGHT = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "onnx" / "backend" / "test" / "data" / "light"


def _photo(name: str) -> Image.Image:
    import skimage.data as sd

    return Image.fromarray(getattr(sd, name)())


def _folder(root: Path, sizes: list[tuple[int, int]], kind: str = "png") -> Path:
    """Three classes of real photographs; picture i of each is resized to sizes[i] as (height, width); names sort in
    that order."""
    for cls, name in PHOTOS.items():
        (root / cls).mkdir(parents=True)
        photo = _photo(name)
        for i, (h, w) in enumerate(sizes):
            photo.resize((w, h), Image.BILINEAR).save(root / cls / f"{i:03d}.{kind}")
    return root


def _recipe(folder: Path, pictures: Path) -> Path:
    path = folder / "pics.toml"
    path.write_text(f'[recipe]\nname = "pics"\n[model]\narch = "mobilenet_v2_small"\n[model.settings]\n'
                    f'num_classes = 3\n[data]\ndataset = "image-folder"\npath = "{pictures}"\n')
    return path


def _chosen(tmp_path: Path, sizes: list[tuple[int, int]], caplog) -> tuple[dict, str]:
    pictures = _folder(tmp_path / "pics", sizes, "jpg")
    with caplog.at_level(logging.INFO, logger="pipeline.recipe.inputs"):
        spec = load_recipe(str(_recipe(tmp_path, pictures))).data["input"]
    return spec, caplog.text


VARIED = [(451, 300), (600, 800), (1200, 900), (480, 640), (300, 451)]  # portrait and landscape, 300 to 900 short


def test_varied_colour_pictures_give_a_square_of_their_median_short_side_capped_at_224(tmp_path, caplog):
    spec, said = _chosen(tmp_path, VARIED, caplog)
    assert (spec["height"], spec["width"], spec["channels"]) == (224, 224, 3)
    # per class 1 of 5 goes to evaluation (seeded): 12 training pictures decide
    assert "model input 224x224 (height x width): the median short side of 12 pictures (300 to 900) is " in said
    assert ", capped at 224; square, as their shapes vary (set [input] height and width" in said, said


def test_one_huge_first_picture_does_not_set_the_input_size(tmp_path, caplog):
    spec, said = _chosen(tmp_path, [(3000, 3000)] + [(48, 64)] * 6, caplog)
    assert (spec["height"], spec["width"]) == (48, 48)
    assert "the median short side of 18 pictures (48 to 3000) is 48; square, as their shapes vary" in said, said


def test_pictures_of_one_shape_keep_it_and_sides_are_rounded_to_8(tmp_path, caplog):
    spec, said = _chosen(tmp_path, [(75, 100)] * 5, caplog)
    assert (spec["height"], spec["width"]) == (72, 96)
    assert "is 75, rounded down to a multiple of 8; their shape (1.33:1, landscape) is kept" in said, said


def test_a_size_set_in_the_recipe_is_used_without_a_note(tmp_path, caplog):
    pictures = _folder(tmp_path / "pics", [(300, 300)] * 3)
    recipe = _recipe(tmp_path, pictures)
    recipe.write_text(recipe.read_text() + "[input]\nheight = 32\nwidth = 40\n")
    with caplog.at_level(logging.INFO, logger="pipeline.recipe.inputs"):
        spec = load_recipe(str(recipe)).data["input"]
    assert (spec["height"], spec["width"]) == (32, 40) and not caplog.records


def _init(pictures: Path, out: Path, model: str = "mobilenet_v2_small") -> dict:
    proc = cli("init", "--model", model, "--data", str(pictures), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tomllib.loads(out.read_text())


def test_init_writes_the_size_and_says_how_it_was_chosen(tmp_path):
    pictures = _folder(tmp_path / "pics", VARIED[:4], "jpg")  # 12 colour JPEGs, as in the issue
    out = tmp_path / "mine.toml"
    recipe = _init(pictures, out)
    text = out.read_text()
    assert (recipe["input"]["height"], recipe["input"]["width"], recipe["input"]["channels"]) == (224, 224, 3)
    assert "# 224x224 (height x width): the median short side of 9 pictures (300 to 900) is 480, capped at 224; " \
           "square, as their shapes vary\n" in text, text
    assert "# mean and std: measured per channel on 9 training pictures (all of them) at 224x224" in text, text
    assert "# 9 training and 3 evaluation pictures\n" in text
    assert "# calibration_samples = 200 but the training split holds 9: int8 calibration will use 9" in text
    assert "# only 3 evaluation pictures: accuracies will be uncertain by up to +-57 points" in text
    assert recipe["model"]["settings"] == {"num_classes": 3, "in_channels": 3}  # the bundled builder's own names
    assert load_recipe(str(out)).data["input"]["mean"] == pytest.approx(recipe["input"]["mean"])


def _numpy_stats(files: list[Path], channels: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([np.asarray(Image.open(f).convert("L" if channels == 1 else "RGB"), np.float64)
                             .reshape(-1, channels) / 255 for f in files])
    return pixels.mean(0), pixels.std(0)


def _train_val(root: Path, pictures: dict[str, list[np.ndarray]], n_val: int) -> Path:
    """train/<class>/ and val/<class>/ sub-trees: the last n_val pictures of each class are for evaluation."""
    for cls, arrays in pictures.items():
        for i, a in enumerate(arrays):
            folder = root / ("val" if i >= len(arrays) - n_val else "train") / cls
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(folder / f"{i:03d}.png")
    return root


def test_init_measures_colour_mean_and_std_as_numpy_does_on_the_training_pictures(tmp_path):
    pictures = {cls: [np.asarray(_photo(name).resize((40, 40), Image.BILINEAR, box=(i * 10, i * 5, 200 + i * 10,
                                                                                    200 + i * 5)))
                      for i in range(6)] for cls, name in PHOTOS.items()}
    root = _train_val(tmp_path / "pics", pictures, n_val=2)
    recipe = _init(root, tmp_path / "mine.toml")
    assert (recipe["input"]["height"], recipe["input"]["width"]) == (40, 40)  # no resize: numpy sees the same pixels
    mean, std = _numpy_stats(sorted((root / "train").rglob("*.png")), 3)
    assert len(set(np.round(mean, 3))) == 3  # three different channels, measured each
    assert recipe["input"]["mean"] == pytest.approx(mean, abs=1e-6)
    assert recipe["input"]["std"] == pytest.approx(std, abs=1e-6)
    assert "measured per channel on 12 training pictures (all of them) at 40x40" in (tmp_path / "mine.toml").read_text()


def test_init_measures_one_channel_for_grey_pictures(tmp_path):
    from pipeline.data import fashion_mnist as fm

    images, labels = fm.load("test")
    pictures = {fm.LABELS[c].replace("/", "-"): list(images[labels == c][:5]) for c in (0, 1, 8)}
    root = _train_val(tmp_path / "pics", pictures, n_val=1)
    recipe = _init(root, tmp_path / "mine.toml")
    assert (recipe["input"]["height"], recipe["input"]["channels"]) == (28, 1)
    mean, std = _numpy_stats(sorted((root / "train").rglob("*.png")), 1)
    assert len(recipe["input"]["mean"]) == 1 and recipe["input"]["mean"][0] == pytest.approx(mean[0], abs=1e-6)
    assert recipe["input"]["std"][0] == pytest.approx(std[0], abs=1e-6)


def test_measured_statistics_are_of_the_pictures_at_the_chosen_size_and_of_a_seeded_sample(tmp_path):
    from pipeline.artifacts.preprocess import resize_bilinear
    from pipeline.data import image_folder

    root = tmp_path / "pics"
    train = sorted(_folder(root / "train", VARIED, "jpg").rglob("*.jpg"))
    _folder(root / "val", [(64, 64)])
    table = image_folder.check({"path": str(root), "val_fraction": 0.2, "split_seed": 0}, tmp_path / "r.toml")
    spec = {"height": 56, "width": 48, "channels": 3}
    found = image_folder.normalisation(table, spec)
    assert found["pictures"] == found["of"] == len(train) == 15
    resized = [np.clip(np.rint(resize_bilinear(np.asarray(Image.open(p).convert("RGB")), 56, 48)), 0, 255)
               for p in train]
    pixels = np.concatenate([r.reshape(-1, 3).astype(np.float64) / 255 for r in resized])
    assert found["mean"] == pytest.approx(pixels.mean(0), abs=1e-9)
    assert found["std"] == pytest.approx(pixels.std(0), abs=1e-9)
    few = image_folder.normalisation(table, spec, limit=4)
    assert (few["pictures"], few["of"]) == (4, 15) and few == image_folder.normalisation(table, spec, limit=4)
    assert few["mean"] != found["mean"]


def test_init_for_a_model_file_keeps_its_normalisation_open(tmp_path):
    pictures = _folder(tmp_path / "pics", VARIED[:4], "jpg")
    out = tmp_path / "mine.toml"
    recipe = _init(pictures, out, str(ONNX_LIGHT / "light_squeezenet.onnx"))
    assert (recipe["input"]["mean"], recipe["input"]["std"]) == ([0.0] * 3, [1.0] * 3)
    assert "# mean and std: 0 and 1 (pixels / 255); set them to what the model was trained with" in out.read_text()
