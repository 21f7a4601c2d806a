"""Data that are not pictures through the Python API (issue 25): `Arrays` in memory and `Dataset` iterables of the
real Free Spoken Digit Dataset MFCC frames, run through `pipeline.api.run` on a host target with few artifacts;
the same arrays again do no work, changed arrays re-run what depends on them; a metric function reaches the
stages; bad arrays are refused with the recipe route's lines, nothing written."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.data import arrays
from tests.conftest import ROOT, write_target

EXAMPLE = ROOT / "docs" / "examples" / "keyword_spotting"
FEW = '["onnx-fp32", "tflite-fp32", "pte-fp32"]'
SHORT = {"train": {"epochs": 2, "batch_size": 64, "lr": 0.05}, "prune": {"enabled": False},
         "quantize": {"methods": []}}


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"api_data_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fsdd = _example("fsdd")
kws = _example("kws_model")


@pytest.fixture(scope="module")
def recordings():
    return fsdd.recordings()


def _splits(recordings):
    from pipeline.api import Arrays

    mfcc, frames, labels = recordings
    val = fsdd.held_out(len(labels))
    return Arrays({"mfcc": mfcc[~val], "frames": frames[~val]}, labels=labels[~val],
                  val=({"mfcc": mfcc[val], "frames": frames[val]}, labels[val]))


def _two_input_net():
    import torch

    torch.manual_seed(0)
    return kws.build_two_inputs(width=16)


def _stages(run) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((run.folder / "manifest.json").read_text())["stages"]}


def _data_folder(run) -> Path:
    return Path(json.loads((run.folder / "report.json").read_text())["model"]["data_path"])


@pytest.fixture(scope="module")
def arrays_run(tmp_path_factory, recordings):
    from pipeline.api import run

    root = tmp_path_factory.mktemp("api_arrays")
    target = write_target(root, runs=5, build=FEW)
    start = time.perf_counter()
    done = run(_two_input_net(), _splits(recordings), target=str(target), build_dir=root / "build", **SHORT)
    return done, target, root / "build", time.perf_counter() - start


@pytest.mark.slow
def test_a_two_input_module_trains_on_fsdd_arrays_in_memory_and_every_output_is_compared(arrays_run):
    done, _, build, seconds = arrays_run
    assert {"torch-fp32", "onnx-fp32", "tflite-fp32", "pte-fp32"} == set(done.artifacts)
    for art in done.artifacts.values():
        assert art.path.is_file() and art.gate == "pass", art
        assert art.accuracy > 0.5  # 10 digits: chance is 0.1
    evaluated = _stages(done)["evaluate"]["data"]["metrics"]
    for name in ("onnx-fp32", "tflite-fp32", "pte-fp32"):
        outputs = evaluated[name]["outputs"]
        assert set(outputs) == {"scores", "embedding"}, name  # both outputs compared, not only the first
        assert all(o["cosine"] > 0.999 and o["reference_max_abs"] > 0.1 for o in outputs.values()), outputs
    folder = _data_folder(done)
    assert folder.parent == build.resolve() / "cache" / "data" and folder.name.startswith("memory-")
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["frames.npy", "labels.npy", "mfcc.npy"]
    print(f"Arrays run: {seconds:.0f} s, top-1 {done.artifacts['tflite-fp32'].accuracy:.3f}")


@pytest.mark.slow
def test_the_same_arrays_again_do_no_work_and_changed_arrays_retrain(arrays_run, recordings):
    from pipeline.api import plan, run

    done, target, build, first = arrays_run
    start = time.perf_counter()
    again = run(_two_input_net(), _splits(tuple(a.copy() for a in recordings)), target=str(target),
                build_dir=build, **SHORT)  # new objects, the same values
    seconds = time.perf_counter() - start
    assert again.folder == done.folder and _data_folder(again) == _data_folder(done)
    assert all(s["cached"] for n, s in _stages(again).items() if n != "report"), _stages(again)
    def train_line(recordings) -> str:
        text = plan(_two_input_net(), _splits(recordings), target=str(target), build_dir=build, **SHORT)
        return next(line for line in text.splitlines() if line.lstrip().startswith("train"))

    assert "cached" in train_line(recordings)
    mfcc, frames, labels = (a.copy() for a in recordings)
    mfcc[3, 2, 1] += 0.5
    assert "cached" not in train_line((mfcc, frames, labels))
    print(f"first run {first:.0f} s, the same arrays again {seconds:.1f} s")


@pytest.mark.slow
def test_a_dataset_of_the_loaders_pairs_gives_the_same_arrays_and_finds_the_cached_run(arrays_run):
    from pipeline.api import Dataset, run

    done, target, build, _ = arrays_run
    train, val = fsdd.load()  # generators: gathered once by the Dataset
    again = run(_two_input_net(), Dataset(train, val, inputs=["mfcc", "frames"]), target=str(target),
                build_dir=build, **SHORT)
    assert _data_folder(again) == _data_folder(done)
    assert all(s["cached"] for n, s in _stages(again).items() if n != "report")
    assert again.artifacts["tflite-fp32"].accuracy == done.artifacts["tflite-fp32"].accuracy


def test_a_dataset_with_a_metric_function_runs_and_the_function_scores_in_the_stages(tmp_path, recordings):
    import torch

    from pipeline.api import Dataset, run

    mfcc, _, labels = recordings
    val = fsdd.held_out(len(labels))
    classes = 10

    def balanced_accuracy(outputs, targets):  # mean recall over the classes, from a closure
        hits = outputs.argmax(1) == targets
        return float(np.mean([hits[targets == c].mean() for c in range(classes)]))

    def pairs(mask):
        return [(torch.from_numpy(mfcc[i]), int(labels[i])) for i in np.flatnonzero(mask)]  # torch tensors too

    torch.manual_seed(0)
    start = time.perf_counter()
    done = run(kws.build(width=16), Dataset(pairs(~val), pairs(val)), metric=balanced_accuracy,
               target=str(write_target(tmp_path, runs=5, build='["onnx-fp32"]')), build_dir=tmp_path / "build",
               **SHORT)
    seconds = time.perf_counter() - start
    evaluated = _stages(done)["evaluate"]["data"]
    assert evaluated["metric"]["name"] == "balanced_accuracy" and evaluated["metric"]["higher_is_better"]
    score = done.artifacts["onnx-fp32"].accuracy
    assert 0.4 < score <= 1.0
    import onnxruntime as ort  # the function, not top-1, scored the artifact: recompute both from the file

    session = ort.InferenceSession(str(done.artifacts["onnx-fp32"].path))
    logits = np.concatenate([session.run(None, {session.get_inputs()[0].name: mfcc[i:i + 1]})[0]
                             for i in np.flatnonzero(val)])
    assert score == pytest.approx(balanced_accuracy(logits, labels[val]), abs=1e-9)
    assert abs(score - float((logits.argmax(1) == labels[val]).mean())) > 1e-6
    assert len(list((tmp_path / "build" / "api" / "metrics").glob("*.pkl"))) == 1
    print(f"Dataset run with a metric function: {seconds:.0f} s, balanced accuracy {score:.3f}")


def _recipe_line(tmp_path: Path, **named: np.ndarray) -> str:
    """The recipe route's refusal of the same arrays as files (dataset = "arrays", path = a folder)."""
    folder = tmp_path / "files"
    folder.mkdir()
    for name, value in named.items():
        np.save(folder / f"{name}.npy", value, allow_pickle=True)
    table = {"path": str(folder), "train": "", "val": "", "inputs": [], "val_fraction": 0.2, "split_seed": 0}
    with pytest.raises(DataError) as info:
        arrays.check(table, Path("r.toml"))
    return str(info.value).replace(f"{folder}/", "Arrays ").replace(".npy", "")


def _api_line(tmp_path: Path, data) -> str:
    from pipeline.api import PipelineError, plan

    build = tmp_path / "build"
    with pytest.raises(PipelineError) as info:
        plan(kws.build(width=8), data, build_dir=build)
    assert info.value.exit_code == 2 and "\n" not in info.value.message
    leftovers = list((build / "cache" / "data").iterdir()) if (build / "cache" / "data").is_dir() else []
    assert leftovers == [], leftovers  # nothing half-written
    return info.value.message


@pytest.mark.parametrize("case", ["lengths", "nan", "objects"])
def test_bad_arrays_are_refused_with_the_recipe_routes_line(tmp_path, case):
    from pipeline.api import Arrays

    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    x = np.ones((30, 13, 32), np.float32)
    y = np.arange(30) % 10
    if case == "lengths":
        y = y[:29]
    elif case == "nan":
        x[7, 2, 1] = np.nan
    else:
        x = np.array([Boom()] * 30, dtype=object)
    api = _api_line(tmp_path, Arrays({"x": x}, labels=y))
    assert api == _recipe_line(tmp_path, x=x, labels=y), api
    assert not marker.exists()


def test_a_dataset_that_yields_bad_samples_is_refused_as_the_python_loader_refuses_it(tmp_path):
    from pipeline.api import Dataset

    train = [(np.ones(3, np.float32), 0), (np.ones(4, np.float32), 1)]
    line = _api_line(tmp_path, Dataset(train, [(np.ones(3, np.float32), 0)]))
    assert line == "Dataset (train): sample 1: input 0 is float32 [4] but sample 0's is float32 [3]"
    nan = [(np.full(3, np.nan, np.float32), 0)]
    assert _api_line(tmp_path, Dataset(nan, nan)) == \
        "Dataset (train) input: holds nan at index [0, 0]; replace or drop the non-finite values"


def test_in_memory_arrays_are_written_once_by_content_and_changed_arrays_get_another_folder(tmp_path):
    import torch

    from pipeline.api import Arrays

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 6), dtype=np.float32), np.arange(20) % 2
    first = Path(Arrays(x, labels=y).table(tmp_path)["path"])
    stamp = (first / "input.npy").stat().st_mtime_ns
    assert Path(Arrays(torch.from_numpy(x.copy()), labels=y).table(tmp_path)["path"]) == first
    assert (first / "input.npy").stat().st_mtime_ns == stamp  # found, not written again
    changed = x.copy()
    changed[0, 0] += 1e-3
    assert Path(Arrays(changed, labels=y).table(tmp_path)["path"]) != first
    assert Path(Arrays(x, labels=y, classes=["a", "b"]).table(tmp_path)["path"]) != first
    assert sorted(p.name for p in (tmp_path / "cache" / "data").iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(("make", "words"), [
    (lambda a: a(np.ones((4, 2)), labels=np.zeros(4), targets=np.zeros(4)), "labels= (class ids) or targets="),
    (lambda a: a("set.npz", labels=np.zeros(4)), "labels=, targets= and classes= are for arrays in memory"),
    (lambda a: a(np.ones((4, 2)), labels=np.zeros(4), val=np.ones((2, 2))), "give an (inputs, target) pair"),
    (lambda a: a({"labels": np.ones((4, 2))}, labels=np.zeros(4)), "input name 'labels' is not usable"),
    (lambda a: a(), "give the inputs once"),
])
def test_arrays_given_in_a_form_it_cannot_take_are_refused_naming_what_to_do(tmp_path, make, words):
    from pipeline.api import Arrays, PipelineError, plan

    with pytest.raises(PipelineError, match=re.escape(words)):
        plan(kws.build(width=8), make(Arrays), build_dir=tmp_path / "build")


def test_a_metric_that_is_neither_a_name_nor_a_function_is_refused(tmp_path):
    from pipeline.api import PipelineError, plan

    with pytest.raises(PipelineError, match="give a built-in's name") as info:
        plan(kws.build(width=8), "fashion-mnist", metric=3, build_dir=tmp_path / "build")
    assert info.value.key == "evaluate.metric"


def test_a_metric_function_is_stored_by_its_code_and_closure_and_loads_from_the_recipes_entry(tmp_path):
    from pipeline.api.metrics import evaluate_table
    from pipeline.core.user_code import entry_spec, resolve

    def make(weight: float):
        def weighted(outputs, targets):
            return weight * float((outputs.argmax(1) == targets).mean())
        return weighted

    first = evaluate_table(make(1.0), False, tmp_path)
    assert first["higher_is_better"] is False and first["metric"].endswith("-weighted.py:weighted")
    assert evaluate_table(make(1.0), None, tmp_path)["metric"] == first["metric"]  # another object, the same code
    assert evaluate_table(make(0.5), None, tmp_path)["metric"] != first["metric"]  # another closure value
    loaded = resolve(entry_spec(first["metric"], tmp_path / "r.toml", "evaluate.metric"))
    assert loaded(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1, 1])) == 0.5
