"""A user's own model and data through the pipeline (issue 8): a Python builder file with structures pruning cannot
follow, a folder of labelled PNGs, a geffnet architecture, an ONNX file and a TFLite file from outside."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, android_refusal, cli, evaluated_outputs, write_target
from tests.networks import assert_outputs_differ_per_input, with_random_weights

USER_MODELS = ROOT / "tests" / "user_models"
ONNX_LIGHT = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "onnx" / "backend" / "test" / "data" / "light"
FIXTURES = ROOT / "build" / "test-fixtures"
MEDIAPIPE = "mediapipe==0.10.21"  # its wheel carries real float16 .tflite models (../shared/DATA.md)


def _run(recipe: Path, target: Path, build: Path, *extra: str) -> dict:
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1]).parent
    return {"proc": proc, "manifest": json.loads((run_dir / "manifest.json").read_text()),
            "report": json.loads((run_dir / "report.json").read_text()), "run_dir": run_dir}


def _stage(run: dict, name: str) -> dict:
    return next(s for s in run["manifest"]["stages"] if s["name"] == name)


def _artifacts(run: dict) -> dict[str, dict]:
    return {a["name"]: a for s in run["manifest"]["stages"] for a in s["artifacts"]}


def _logits(run: dict, name: str) -> np.ndarray:
    return evaluated_outputs(run["run_dir"], name)


@pytest.fixture(scope="module")
def user_model_run(tmp_path_factory) -> dict:
    """The test user's ShuffleSplitNet (SE, channel split/concat, shuffle, view) with prune + PTQ + every artifact.

    Trained to a meaningful accuracy (87% on 2026-12-07): at 1 epoch on 3,000 pictures it reached 56%, and its int8
    top-1 agreement (0.9667..0.9767 over 300 pictures) sat on the 0.97 gate, so `make test-all` failed by chance.
    Its TFLite int8 file still flips 1 to 2.3% of the 300 pictures against its float source (0.9767..0.99 measured
    on 2026-12-07, accuracy 1.0 point below it: the default int8 gates, 0.97 and 1.0 point, exactly), and with train
    seeds 1 and 2 its pruned fp16 file flipped 1 picture, all the default fp16 gate allows at 300 pictures (0.995;
    its 0.3 points of accuracy are less than one picture). The tolerances here leave room for that spread; a broken
    conversion (agreement far below them) still fails.
    """
    folder = tmp_path_factory.mktemp("user-model")
    recipe = folder / "shuffle.toml"
    recipe.write_text(f"""[recipe]
name = "shuffle"
[model]
source = "python"
entry = "{USER_MODELS / 'shuffle_net.py'}:build"
[model.settings]
num_classes = 10
in_channels = 1
[data]
dataset = "fashion-mnist"
eval_samples = 300
calibration_samples = 32
[train]
epochs = 3
max_train_samples = 12000
batch_size = 64
lr = 0.05
[prune]
enabled = true
macs_factor = 1.5
max_accuracy_drop = 15.0
[prune.finetune]
epochs = 0.5
[quantize]
methods = ["ptq"]
max_accuracy_drop = 15.0
[tolerances.fp16]
min_top1_agreement = 0.98
max_accuracy_drop = 2.0
[tolerances.int8]
min_top1_agreement = 0.9
max_accuracy_drop = 5.0
""")
    return _run(recipe, write_target(folder, runs=10), folder / "build")


@pytest.mark.slow  # a whole pipeline run (minutes on 2 cores): make test-all
def test_user_model_file_reaches_every_artifact_with_parity(user_model_run):
    arts = _artifacts(user_model_run)
    for name in ("torch-fp32", "onnx-fp32", "tflite-fp32", "pte-fp32", "torch-pruned-fp32", "tflite-pruned-fp32",
                 "pte-pruned-fp32", "pte-pruned-int8-ptq", "tflite-pruned-int8-ptq"):
        assert name in arts, sorted(arts)
    assert arts["torch-fp32"]["extra"]["model"]["file"] == str(USER_MODELS / "shuffle_net.py")
    metrics = _stage(user_model_run, "evaluate")["data"]["metrics"]
    for name in ("onnx-fp32", "tflite-fp32", "pte-fp32", "tflite-pruned-fp32", "pte-pruned-fp32"):
        assert metrics[name]["top1_agreement"] >= 0.999 and metrics[name]["max_abs_diff"] < 1e-3, name
    assert metrics["torch-fp32"]["accuracy"] > 0.8  # 3 epochs on 12,000 pictures; chance is 0.1


@pytest.mark.slow  # a whole pipeline run (minutes on 2 cores): make test-all
def test_pruning_leaves_the_split_concat_group_unpruned_and_says_which(user_model_run):
    prune = _stage(user_model_run, "prune")["data"]
    assert prune["after"]["macs"] < prune["before"]["macs"] / 1.3
    left = prune["left_unpruned"]
    assert left and all("importance failed" in x["reason"] for x in left)
    assert any("branch.0" in x["layers"] for x in left)  # the worked half of the split
    widths = {w["name"]: (w["out_before"], w["out_after"]) for w in prune["layers"]}
    assert widths["branch.0"][0] == widths["branch.0"][1] and widths["head.0"][1] < widths["head.0"][0]
    assert "Left unpruned" in (user_model_run["run_dir"] / "report.md").read_text()


@pytest.mark.slow  # a whole pipeline run (minutes on 2 cores): make test-all
def test_a_fresh_process_rebuilds_the_user_model_for_the_benchmark(user_model_run):
    results = _stage(user_model_run, "benchmark")["data"]["results"]
    assert results["torch-fp32"]["latency_ms"]["p50"] > 0 and results["torch-pruned-fp32"]["latency_ms"]["p50"] > 0


def test_changing_the_user_file_retrains(tmp_path):
    from pipeline.engine.recipes import load_recipe
    from pipeline.models.recipe_model import model_key

    (tmp_path / "blocks.py").write_text((USER_MODELS / "blocks.py").read_text())
    (tmp_path / "net.py").write_text((USER_MODELS / "shuffle_net.py").read_text())
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "r"\n[model]\nsource = "python"\nentry = "net.py:build"\n')
    before = model_key(load_recipe(str(recipe)))
    (tmp_path / "blocks.py").write_text((USER_MODELS / "blocks.py").read_text() + "\n# a changed helper\n")
    assert model_key(load_recipe(str(recipe))) != before  # a change in an imported sibling counts too


def write_png_folder(root: Path, per_class: int) -> Path:
    """Fashion-MNIST test pictures as PNG files, one folder per class name, and one corrupt file."""
    from PIL import Image

    from pipeline.data import fashion_mnist as fm

    images, labels = fm.load("test")
    counts = dict.fromkeys(range(10), 0)
    for img, label in zip(images, labels, strict=True):
        if counts[int(label)] >= per_class:
            continue
        folder = root / fm.LABELS[label].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{counts[int(label)]:04d}.png")
        counts[int(label)] += 1
    (root / "Bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("image-folder")
    pictures = write_png_folder(folder / "pictures", per_class=120)
    recipe = folder / "pictures.toml"
    recipe.write_text(f"""[recipe]
name = "pictures"
[model]
arch = "mobilenet_v2_small"
[model.settings]
num_classes = 10
in_channels = 1
[data]
dataset = "image-folder"
path = "{pictures.name}"
val_fraction = 0.2
calibration_samples = 32
[train]
epochs = 6
batch_size = 64
lr = 0.05
flip = false
""")
    target = write_target(folder, runs=10, build='["onnx-fp32", "tflite-fp32", "pte-fp32"]')
    return {**_run(recipe, target, folder / "build"), "recipe": recipe, "target": target, "folder": folder}


@pytest.mark.slow  # a whole pipeline run (minutes on 2 cores): make test-all
def test_image_folder_trains_and_evaluates_with_the_corrupt_file_named(folder_run):
    train = _stage(folder_run, "train")["data"]
    assert train["data"]["skipped_count"] == 1 and train["data"]["skipped"][0].startswith("Bag/broken.png")
    assert train["data"]["train"] + train["data"]["eval"] == 1200
    assert train["accuracy"] > 0.5
    arts = _artifacts(folder_run)
    assert arts["torch-fp32"]["extra"]["labels"][0] == "Ankle boot"  # class names from the folders, sorted
    metrics = _stage(folder_run, "evaluate")["data"]["metrics"]
    for name in ("onnx-fp32", "tflite-fp32", "pte-fp32"):
        assert metrics[name]["top1_agreement"] >= 0.999 and abs(metrics[name]["accuracy_delta"]) <= 0.1
    assert "broken.png" in (folder_run["run_dir"] / "report.md").read_text()


@pytest.mark.slow  # a whole pipeline run (minutes on 2 cores): make test-all
def test_a_changed_folder_is_new_data_and_an_unchanged_one_is_read_from_the_array_cache(folder_run):
    from pipeline.data import array_cache, eval_split
    from pipeline.engine.recipes import load_recipe

    array_cache.set_root(folder_run["folder"] / "build" / "cache" / "data")
    try:
        split = eval_split(load_recipe(str(folder_run["recipe"])))
        assert split.read_seconds == 0.0 and len(split.images) == 240  # memory-mapped from the first run
    finally:
        array_cache.set_root(None)
    (folder_run["folder"] / "pictures" / "Bag" / "broken.png").unlink()
    again = cli("run", "--recipe", str(folder_run["recipe"]), "--target", str(folder_run["target"]),
                "--build-dir", str(folder_run["folder"] / "build"), "--only", "train", "-v")
    assert again.returncode == 0 and "[train] running" in again.stderr, again.stderr[-2000:]


@pytest.mark.parametrize("layout", ["split", "train-val"])
def test_init_writes_a_recipe_that_loads(tmp_path, layout):
    from pipeline.engine.recipes import load_recipe

    pictures = write_png_folder(tmp_path / "pics", per_class=3)
    if layout == "train-val":
        for sub in ("train", "val"):
            for d in list(pictures.iterdir()):
                if d.name not in ("train", "val"):
                    (pictures / sub / d.name).mkdir(parents=True, exist_ok=True)
                    for f in sorted(d.glob("*.png"))[:2]:
                        (pictures / sub / d.name / f.name).write_bytes(f.read_bytes())
        for d in list(pictures.iterdir()):
            if d.name not in ("train", "val"):
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()
    out = tmp_path / "mine.toml"
    proc = cli("init", "--model", f"{USER_MODELS / 'shuffle_net.py'}:build", "--data", str(pictures),
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    recipe = load_recipe(str(out))
    assert recipe.data["model"]["settings"] == {"num_classes": 10, "in_channels": 1}
    assert (recipe.data["input"]["height"], recipe.data["input"]["channels"]) == (28, 1)
    assert cli("init", "--model", "x.py:build", "--data", str(pictures), "--out", str(out)).returncode == 2


def test_folders_without_two_classes_of_pictures_are_refused(tmp_path):
    from pipeline.core.errors import ConfigError
    from pipeline.engine.recipes import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "r"\n[data]\ndataset = "image-folder"\npath = "pics"\n'
                      '[model]\narch = "resnet_small"\n')
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no PNG or JPEG pictures"):
        load_recipe(str(recipe))
    (tmp_path / "pics" / "cat" / "a.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="pictures for one class only \\('cat'\\)"):
        load_recipe(str(recipe))


def test_a_file_model_refuses_what_needs_pytorch_at_the_door(tmp_path):
    from pipeline.core.errors import ConfigError
    from pipeline.engine.recipes import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[recipe]\nname = "r"\n[model]\nsource = "onnx"\npath = "{ONNX_LIGHT}/light_resnet50.onnx"\n'
                      '[data]\ndataset = "photos"\n[prune]\nenabled = true\n')
    with pytest.raises(ConfigError, match="prune.enabled: pruning needs a PyTorch model"):
        load_recipe(str(recipe))


def _file_recipe(folder: Path, kind: str, path: Path) -> Path:
    recipe = folder / f"{kind}.toml"
    recipe.write_text(f'[recipe]\nname = "{kind}-file"\n[model]\nsource = "{kind}"\npath = "{path}"\n'
                      '[data]\ndataset = "photos"\ncalibration_samples = 14\n')
    return recipe


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """The 'photos' evaluation set as the pipeline feeds it to an imported ImageNet model: N x 3 x 224 x 224."""
    from pipeline.data import photos as source

    images, _ = source.load({"height": 224, "width": 224, "channels": 3})
    return ((images.astype(np.float32) - 127) / 128).transpose(0, 3, 1, 2)  # (pixel - 127) / 128, as the source


def _light_model(name: str, folder: Path, photos: np.ndarray) -> Path:
    """An onnx-wheel model-zoo graph as shipped (opset 9, from outside), with weights that make outputs differ."""
    return with_random_weights(ONNX_LIGHT / f"{name}.onnx", folder / f"{name}.onnx", photos, seed=0)


def test_onnx_file_from_outside_is_converted_evaluated_and_benchmarked(tmp_path, photos):
    """light_squeezenet (opset 9, from the onnx wheel's backend test data): onnx2tf 1.29 turns its Softmax over the
    [1, 1000, 1, 1] output into one over a size-1 axis (every output 1.0 instead of about 0.001): the fp32 parity gate
    must catch that silent conversion error, and with --no-gates the run still evaluates and benchmarks it."""
    recipe = _file_recipe(tmp_path, "onnx", _light_model("light_squeezenet", tmp_path, photos))
    target = write_target(tmp_path, runs=10, build='["onnx-fp32", "tflite-fp32"]')
    gated = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(tmp_path / "b"))
    # with the shipped weights (0.02 everywhere) every output was 0.001 for every photo, so the top-1 class agreed
    assert gated.returncode == 3 and "tflite-fp32: top1_agreement 0.0000 < 0.999" in gated.stderr, gated.stderr[-2000:]
    run = _run(recipe, target, tmp_path / "b", "--no-gates")
    assert _stage(run, "to_onnx")["data"]["imported"].endswith("light_squeezenet.onnx")
    assert_outputs_differ_per_input(_logits(run, "onnx-fp32"))  # the gate compared outputs that mean something
    assert np.allclose(_logits(run, "tflite-fp32"), 1.0)  # the converter's error, as described above
    assert _stage(run, "evaluate")["data"]["metrics"]["tflite-fp32"]["max_abs_diff"] > 0.9
    for skipped in ("train", "prune", "quantize", "to_executorch"):
        assert "needs a PyTorch model" in _stage(run, skipped)["data"]["skipped"]
    assert _artifacts(run)["tflite-fp32"]["reference"] == "onnx-fp32"
    assert set(_stage(run, "benchmark")["data"]["results"]) == {"onnx-fp32", "tflite-fp32"}


@pytest.mark.slow
def test_onnx_resnet50_file_converts_with_parity_and_int8(tmp_path, photos):
    recipe = _file_recipe(tmp_path, "onnx", _light_model("light_resnet50", tmp_path, photos))
    target = write_target(tmp_path, runs=10, build='["onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8"]')
    # With its shipped weights (0.02 everywhere) every output was 0.001 for every photo and every gate passed. With
    # random weights its softmax is flat (top-1 0.014..0.25) and the int8 file agreed on 11 of 14 photos
    # (0.7857 < 0.97 on 2026-12-07): not a fact about the converter that 14 photos can settle, so the gates are off
    # and the float parity this test is about is asserted here.
    run = _run(recipe, target, tmp_path / "b", "--no-gates")
    metrics = _stage(run, "evaluate")["data"]["metrics"]
    assert_outputs_differ_per_input(_logits(run, "onnx-fp32"))
    assert metrics["tflite-fp32"]["top1_agreement"] == 1.0 and metrics["tflite-fp32"]["max_abs_diff"] < 1e-4
    assert metrics["tflite-fp16"]["top1_agreement"] == 1.0 and metrics["tflite-fp16"]["max_abs_diff"] < 2e-2
    assert metrics["tflite-int8-ptq"]["samples"] == 14  # built, run and compared


@pytest.fixture(scope="module")
def mediapipe_tflite() -> Path:
    """face_detection_short_range.tflite from the mediapipe wheel (downloaded from PyPI once, not installed)."""
    dest = FIXTURES / "face_detection_short_range.tflite"
    if not dest.exists():
        FIXTURES.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", MEDIAPIPE, "--no-deps", "--only-binary=:all:",
                        "-q", "-d", str(FIXTURES)], check=True, timeout=600)
        wheel = next(FIXTURES.glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read("mediapipe/modules/face_detection/face_detection_short_range.tflite")
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        wheel.unlink()
    return dest


def test_tflite_file_from_outside_is_evaluated_and_benchmarked(tmp_path, mediapipe_tflite):
    """mediapipe's face detector (float16 weights, two outputs: box regressors and scores per anchor) imported as a
    file: each output measured against the file's own fp32 on real photos, benchmarked, released with every tensor
    in its metadata, verified output by output, and refused by the Android app in one line."""
    recipe = _file_recipe(tmp_path, "tflite", mediapipe_tflite)
    target = write_target(tmp_path, runs=10, build='["tflite-fp16"]')
    run = _run(recipe, target, tmp_path / "b")
    arts = _artifacts(run)
    assert set(arts) == {"tflite-fp16", "tflite-fp32"}  # float16 weights, float32 input: what mediapipe ships
    a = arts["tflite-fp16"]
    assert a["layout"] == "NHWC" and a["input_shape"] == [1, 128, 128, 3] and a["reference"] == "tflite-fp32"
    assert [(o["name"], o["shape"]) for o in a["outputs"]] == [("regressors", [1, 896, 16]),
                                                              ("classificators", [1, 896, 1])]
    assert arts["tflite-fp32"]["role"] == "intermediate"  # the reference, not built for this target
    assert run["manifest"]["recipe"]["settings"]["input"]["origin"]["height"] == "model file"
    assert _stage(run, "to_onnx")["data"]["skipped"].startswith("model.source = 'tflite'")
    metrics = _stage(run, "evaluate")["data"]["metrics"]
    assert set(metrics) == {"tflite-fp16"} and metrics["tflite-fp16"]["reference"] == "tflite-fp32"
    assert set(metrics["tflite-fp16"]["outputs"]) == {"regressors", "classificators"}  # every output compared
    assert all(o["max_abs_error"] <= 1e-3 * o["reference_max_abs"] for o in metrics["tflite-fp16"]["outputs"].values())
    assert _stage(run, "benchmark")["data"]["results"]["tflite-fp16"]["latency_ms"]["p50"] > 0
    outputs = np.load(next((run["run_dir"].parent.parent / "cache" / "evaluate").glob("*/outputs_tflite-fp16.npz")))
    for y in (outputs["arr_0"], outputs["arr_1"]):  # the fidelity above compares outputs that differ per photo
        assert len(y) == 14 and np.isfinite(y).all() and np.ptp(y.reshape(14, -1), axis=0).max() > 1.0
    released = cli("release", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(tmp_path / "b"))
    assert released.returncode == 0, released.stderr[-2000:]
    bundle = Path(released.stdout.strip().splitlines()[-1])
    verified = cli("verify", str(bundle))
    assert verified.returncode == 0, verified.stderr[-2000:]
    assert ("tflite-fp16 (litert): 14 samples reproduce the recorded outputs (2 outputs; regressors: max abs diff"
            in verified.stdout and "; classificators: max abs diff" in verified.stdout)
    refusal = android_refusal(bundle.parent / bundle.name.removesuffix(".tar.gz") / "metadata.json", tmp_path)
    assert refusal.endswith("UnsupportedModelException: cannot show tflite-file: it returns 2 outputs (regressors, "
                            "classificators); this app shows picture classifiers (one picture in, one list of class "
                            "scores out)")


@pytest.mark.slow
def test_geffnet_architecture_through_every_float_artifact(tmp_path):
    recipe = tmp_path / "geffnet.toml"
    recipe.write_text("""[recipe]
name = "geffnet-mbv3"
[model]
source = "package"
package = "geffnet"
arch = "mobilenetv3_small_100"
[model.settings]
num_classes = 10
[input]
height = 32
width = 32
channels = 3
[data]
dataset = "fashion-mnist"
eval_samples = 300
[train]
epochs = 1
max_train_samples = 2000
""")
    # The fp32 gate's absolute limit (1e-3) sat on this model's edge: one epoch leaves logits of a few tens, whose
    # float rounding across runtimes reached 1.07e-3 on 2026-12-07. What this test is about is parity relative to the
    # output range (the geffnet table's criterion), so the gate is off and the test measures that itself.
    run = _run(recipe, write_target(tmp_path, runs=10, build='["onnx-fp32", "tflite-fp32", "pte-fp32"]'),
               tmp_path / "b", "--no-gates")
    metrics = _stage(run, "evaluate")["data"]["metrics"]
    reference = np.load(next((tmp_path / "b" / "cache" / "evaluate").glob("*/logits_torch-fp32.npy")))
    spread = float(reference.max() - reference.min())
    assert spread > 0 and reference.std(axis=0).max() > 0  # outputs that differ per input: parity means something
    for name in ("onnx-fp32", "tflite-fp32", "pte-fp32"):
        assert metrics[name]["top1_agreement"] >= 0.999, name
        assert metrics[name]["max_abs_diff"] <= 1e-4 * spread, (name, metrics[name]["max_abs_diff"], spread)
    assert _artifacts(run)["tflite-fp32"]["input_shape"] == [1, 32, 32, 3]


def test_mixnet_prunes_with_its_fixed_split_layers_kept_and_runs():
    import geffnet
    import torch
    from geffnet.config import set_exportable, set_no_jit

    from pipeline.compression.pruning import PruneSettings, prune
    from tests.networks import calibrate_batchnorm

    torch.manual_seed(0)
    with set_exportable(True), set_no_jit(True):
        model = geffnet.create_model("mixnet_s", num_classes=10)
    calibrate_batchnorm(model, [torch.randn(8, 3, 64, 64) for _ in range(2)])
    check = torch.randn(2, 3, 64, 64)
    pruned, rep = prune(model, torch.zeros(1, 3, 64, 64), PruneSettings(ratio=0.3, ignore=("classifier",)),
                        check=check)
    assert rep["after"]["params"] < rep["before"]["params"]
    assert any("MixedConv2d" in x["reason"] and "split_with_sizes" in x["reason"] for x in rep["left_unpruned"])
    assert pruned(check).shape == (2, 10)
