"""Property-based fuzzing (Hypothesis) of what comes from outside: recipe and target files, state dicts, pictures.

The property: each input is accepted, or refused with a UserError (exit 2, one line); never another exception,
never a file written outside the test's folder. The budget is small under `make test` and larger under
`make test-all` (PIPELINE_FUZZ_EXAMPLES, set by the Makefile).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import UserError
from pipeline.core.schema import Field
from pipeline.engine.recipes import load_recipe, recipe_schema
from pipeline.recipe.targets import TARGET_SCHEMA, load_target
from pipeline.starter.recipe import _toml
from tests.conftest import DEFAULT_RECIPE, write_target

EXAMPLES = int(os.environ.get("PIPELINE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(max_size=40), st.sampled_from(["../../x", "/etc/passwd", "a/b", "", ".", "ok", "l2"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8), inner, max_size=3), max_leaves=8)


def _keys(schema: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in schema.items():
        out += _keys(v, prefix + (k,)) if isinstance(v, dict) else [prefix + (k,)]
        if isinstance(v, Field) and v.free_table:
            out.append(prefix + (k, "anything"))
    return out


def _dump(tree: dict, prefix: str = "") -> str:
    """A tiny TOML writer for the trees below (tables, then their keys)."""
    plain = {k: v for k, v in tree.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in tree.items() if isinstance(v, dict)}
    lines = [f"[{prefix}]"] if prefix and plain else []
    for k, v in plain.items():
        lines.append(f'"{k}" = {_value(v)}')
    for k, v in tables.items():
        lines.append(_dump(v, f"{prefix}.{k}" if prefix else f'"{k}"' if not k.isidentifier() else k))
    return "\n".join(lines) + "\n"


def _value(v) -> str:
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, dict):
        return "{" + ", ".join(f'"{k}" = {_value(x)}' for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)  # JSON escapes strings the way TOML does
    return _toml(v)


def _mutate(tree: dict, path: tuple[str, ...], value) -> dict:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
    return tree


def _check(loader, path: Path, folder: Path) -> None:
    try:
        loader(str(path))
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
    assert {p.name for p in folder.iterdir()} <= {path.name, "pics", "blocks.py"}, list(folder.iterdir())


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_a_recipe_are_refused_in_one_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / "r.toml"
    path.write_bytes(data)
    _check(load_recipe, path, folder)


@FUZZ
@given(st.sampled_from(_keys(recipe_schema())), values, st.sampled_from(_keys(recipe_schema())), values)
def test_mutated_recipes_load_or_are_refused_in_one_line(tmp_path_factory, key1, value1, key2, value2):
    folder = tmp_path_factory.mktemp("recipe")
    tree = tomllib.loads(DEFAULT_RECIPE.read_text())
    tree = _mutate(_mutate(tree, key1, value1), key2, value2)
    path = folder / "r.toml"
    path.write_text(_dump(tree))
    _check(load_recipe, path, folder)


@FUZZ
@given(st.sampled_from(_keys(TARGET_SCHEMA)), values)
def test_mutated_targets_load_or_are_refused_in_one_line(tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("target")
    base = tomllib.loads(write_target(folder).read_text())
    path = folder / "test-host.toml"
    path.write_text(_dump(_mutate(base, key, value)))
    _check(load_target, path, folder)


state_values = st.one_of(
    st.builds(torch.randn, st.integers(0, 5), st.integers(1, 5)), st.builds(torch.full, st.just((3,)),
                                                                            st.sampled_from([float("nan"), 1e38])),
    st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=3),
)


@FUZZ
@given(st.one_of(st.dictionaries(st.sampled_from(["stem.0.weight", "classifier.weight", "state_dict", "model", "x"]),
                                 state_values, max_size=4), state_values, st.binary(max_size=200)))
def test_weight_files_load_or_are_refused_in_one_line(tmp_path_factory, content):
    from pipeline.models import build
    from pipeline.models.checkpoint import load_state_dict

    folder = tmp_path_factory.mktemp("weights")
    path = folder / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    model = build("resnet_small", num_classes=10, in_channels=1, widths=[8, 16])
    try:
        load_state_dict(model, path)
    except UserError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4))
def test_unreadable_pictures_in_a_folder_are_skipped_never_raised(tmp_path_factory, blobs):
    from PIL import Image

    from pipeline.data import image_folder

    folder = tmp_path_factory.mktemp("pics")
    for cls in ("a", "b"):
        (folder / cls).mkdir()
        Image.new("L", (8, 8), 128).save(folder / cls / "good.png")
    for i, blob in enumerate(blobs):
        (folder / "a" / f"bad{i}.png").write_bytes(blob)
    table = {"path": str(folder), "val_fraction": 0.5, "split_seed": 0}
    spec = {"height": 8, "width": 8, "channels": 1}
    loaded = [image_folder.load(table, which, spec) for which in ("train", "test")]
    assert sum(len(s.images) for s in loaded) + sum(len(s.skipped) for s in loaded) == 2 + len(blobs)


@pytest.mark.parametrize("size", [(20000, 20000)])
def test_a_decompression_bomb_picture_is_skipped(tmp_path, size):
    from PIL import Image

    from pipeline.data import image_folder

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / cls / "ok.png")
    Image.new("1", size).save(tmp_path / "a" / "bomb.png")  # 50 KB on disk, 400 megapixels decoded
    split = image_folder.load({"path": str(tmp_path), "val_fraction": 0.5, "split_seed": 0}, "train",
                              {"height": 8, "width": 8, "channels": 1})
    split2 = image_folder.load({"path": str(tmp_path), "val_fraction": 0.5, "split_seed": 0}, "test",
                               {"height": 8, "width": 8, "channels": 1})
    skipped = split.skipped + split2.skipped
    assert len(skipped) == 1 and "bomb.png" in skipped[0] and "DecompressionBomb" in skipped[0]


# Bundle archives from outside: members of every kind, name and size appended to a good bundle, or its bytes damaged.
_NAMES = st.one_of(
    st.sampled_from(["tiny-0.1.0-test-host/models/x.bin", "tiny-0.1.0-test-host/metadata.json",
                     "tiny-0.1.0-test-host/metadata.json/x", "tiny-0.1.0-test-host/SHA256SUMS", "../escape",
                     "tiny-0.1.0-test-host/../../escape", "/etc/passwd", "C:/x", "tiny-0.1.0-test-host//x", ".", "",
                     "other-top/x", "tiny-0.1.0-test-host/a\\..\\b", "tiny-0.1.0-test-host/" + "d/" * 60 + "f"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30).map(
        lambda s: f"tiny-0.1.0-test-host/{s}"),
)
_KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                          tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE])
_MEMBERS = st.lists(st.tuples(_NAMES, _KINDS, st.sampled_from(["", "/etc/shadow", "../x", "models/m.tflite"]),
                              st.integers(0, 3000), st.sampled_from([0o644, 0o755, 0o4755, 0o777, 0])),
                    min_size=1, max_size=4)


def _outside_snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _extract_or_refuse(path: Path, dest: Path, around: Path) -> None:
    """safe_extract either gives the bundle's folder inside `dest` holding only plain files and folders, or refuses
    with one line; nothing appears in `around` (dest's parent) but inside dest."""
    from pipeline.release import archive

    before = _outside_snapshot(around) - {str(dest.relative_to(around))}
    try:
        top = archive.safe_extract(path, dest)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert top.resolve().parent == dest.resolve()
        for p in dest.rglob("*"):
            assert not p.is_symlink() and (p.is_file() or p.is_dir()), p
            assert dest.resolve() in p.resolve().parents
    after = {p for p in _outside_snapshot(around) if not p.startswith(str(dest.relative_to(around)))}
    assert after <= before | {str(dest.relative_to(around))}, after - before


@FUZZ
@given(_MEMBERS)
def test_hostile_archive_members_extract_safely_or_are_refused_in_one_line(tmp_path_factory, members):
    from tests.test_bundle_archive import _archive_with

    work = tmp_path_factory.mktemp("tar")
    extra = []
    for name, kind, link, size, mode in members:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, link, mode
        info.size = size if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else 0
        extra.append((info, bytes(info.size)))
    try:
        path = _archive_with(work, extra)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile itself cannot write such a header: no archive to test
    _extract_or_refuse(path, work / "dest", work)


@FUZZ
@given(st.data())
def test_damaged_archive_bytes_extract_safely_or_are_refused_in_one_line(tmp_path_factory, data):
    from tests.test_bundle_archive import _archive_with

    work = tmp_path_factory.mktemp("tar")
    path = _archive_with(work, [])
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    path.write_bytes(bytes(blob[:cut]))
    _extract_or_refuse(path, work / "dest", work)


# Raw extended headers before a member, written without tarfile (which would refuse to write most of them): pax
# `x`/`g` and GNU `L`/`K`, small or oversized, well-formed or not, with names holding control characters.
_CONTROL_NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20).map(
    lambda s: f"tiny-0.1.0-test-host/\x1b[31m{s}\n\rerror: fine\t")
_PAX_RECORDS = st.lists(st.tuples(st.sampled_from(["path", "linkpath", "mtime", "size", "hdrcharset", "uname",
                                                   "GNU.sparse.map", "GNU.sparse.major", "comment", "a=b", ""]),
                                  st.one_of(_NAMES, _CONTROL_NAMES, st.from_regex(r"[0-9]{1,80}", fullmatch=True))),
                        max_size=4)


def _pax_record(key: str, value: str) -> bytes:
    """`LEN KEY=VALUE\\n`, LEN counting its own digits."""
    body = f" {key}={value}\n".encode(errors="surrogateescape")
    length = len(body) + len(str(len(body)))
    length += len(str(length)) > len(str(len(body)))  # the length grew a digit
    return str(length).encode() + body


_EXTENDED = st.tuples(
    st.sampled_from([tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK]),
    st.one_of(_PAX_RECORDS.map(lambda rs: b"".join(_pax_record(k, v) for k, v in rs)),
              st.one_of(_NAMES, _CONTROL_NAMES).map(lambda s: s.encode(errors="surrogateescape") + b"\0"),
              st.binary(max_size=600), st.just(b"2 " * 400 + b"x=1\n")),
    st.one_of(st.none(), st.integers(0, 20_000), st.integers(2**20, 2**33)),  # declared size: exact, or not
)


def _with_headers_before_last_member(work: Path, raw: bytes) -> Path:
    """The small good bundle with `raw` spliced in before its last member's header, so that harmless extended
    headers leave an archive that extracts."""
    from pipeline.release import archive
    from tests.test_bundle_archive import NAME, _tree

    good = gzip.decompress(archive.tar_gz_bytes(_tree(work / "src" / NAME), NAME))
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        at = tar.getmembers()[-1].offset
    path = work / "raw.tar.gz"
    path.write_bytes(gzip.compress(good[:at] + raw + good[at:]))
    return path


@FUZZ
@given(st.lists(_EXTENDED, min_size=1, max_size=6), st.one_of(st.none(), _NAMES, _CONTROL_NAMES))
def test_hostile_extended_headers_extract_safely_or_are_refused_quickly(tmp_path_factory, headers, name):
    """`name` None: the headers go before a good member; else before a new member of that name."""
    import time

    from tests.test_bundle_archive import _extended, _raw_archive

    work = tmp_path_factory.mktemp("tar")
    raw = b"".join(_extended(kind, body, declared) for kind, body, declared in headers)
    path = _with_headers_before_last_member(work, raw) if name is None else _raw_archive(work, raw, name)
    start = time.monotonic()
    _extract_or_refuse(path, work / "dest", work)
    assert time.monotonic() - start < 2, headers


# Bundle metadata from outside that declares inputs or sample counts far past what verify may decode: each is
# refused from the numbers alone, or decoded one sample at a time within the limits; quickly, in little memory.
_SIDES = st.one_of(st.sampled_from([1, 28, 1024, 4096, 4097, 2**31, 10**30, 0, -1]), st.integers(-(2**70), 2**70))
_COUNTS = st.one_of(st.sampled_from([0, 1, 16, 40, 64, 65, 100_000]), st.integers(0, 3000))


@FUZZ
@given(_SIDES, _SIDES, st.sampled_from([1, 3, 0, 4, 3.0, True]), _COUNTS)
def test_bundle_metadata_declaring_huge_inputs_or_sample_counts_is_refused_in_one_line_quickly(
    tmp_path_factory, height, width, channels, count
):
    import time
    import tracemalloc

    import numpy as np

    from pipeline.core.errors import message_line
    from pipeline.release import checksums, samples
    from pipeline.release.verify import check_contents
    from tests.test_android_demo import GREY_28, write_fixture_bundle

    root = tmp_path_factory.mktemp("meta") / "bundle"
    write_fixture_bundle(root, GREY_28, {"one.png": np.full((28, 28), 7, np.uint8)})
    meta = json.loads((root / "metadata.json").read_text())
    c = int(channels) if channels in (1, 3) else 1
    meta["input"] = {"height": height, "width": width, "channels": channels, "mean": [0.5] * c, "std": [0.5] * c}
    for a in meta["artifacts"]:
        a["input_shape"] = [1, channels, height, width] if a["layout"] == "NCHW" else [1, height, width, channels]
        if count <= 64:  # recorded outputs with one row per sample, so the pictures are reached
            (root / a["sample_outputs"]).write_bytes(samples.npy_bytes(np.zeros((count, 10), np.float32)))
    meta["samples"] = [dict(meta["samples"][0]) for _ in range(count)]  # one 28x28 picture named `count` times
    (root / "metadata.json").write_text(json.dumps(meta))
    checksums.write(root)
    start = time.monotonic()
    tracemalloc.start()
    try:
        check_contents(root, "fuzz")
    except UserError as exc:
        assert len(message_line(exc).splitlines()) == 1 and len(str(exc)) < 400, str(exc)[:500]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - start < 20 and peak < 300 << 20, (time.monotonic() - start, peak)


# Recipe keys and --set keys holding control characters, line separators or 64 KB: refused in one short line.
_HOSTILE_KEYS = st.one_of(
    st.sampled_from(["x\nerror: fine: all good", "\r\nerror: x", "\x1b[2Jcleared", "a\u2028b\u0085c", "k" * 65536,
                     "tab\there", "bell\x07"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40).filter(
        lambda s: not s.isprintable()),
)


@FUZZ
@given(st.sampled_from(["recipe", "train", "data", "prune", "quantize", "model.settings"]), _HOSTILE_KEYS,
       st.booleans())
@example("model.settings", "k" * 65536, False)  # found by CI's run: the architecture's refusal repeated the key whole
def test_recipe_keys_holding_control_characters_are_refused_in_one_short_line(tmp_path_factory, table, key, via_set):
    from pipeline.core.errors import MESSAGE_LIMIT, message_line

    folder = tmp_path_factory.mktemp("keys")
    tree = tomllib.loads(DEFAULT_RECIPE.read_text())
    path = folder / "r.toml"
    overrides = {}
    if via_set:
        path.write_text(_dump(tree))
        overrides = {f"{table}.{key}": 1}
    else:
        path.write_text(_dump(_mutate(tree, (*table.split("."), key), 1)))
    try:
        load_recipe(str(path), overrides)
    except UserError as exc:
        line = message_line(exc)
        assert len(line.splitlines()) == 1 and len(line) < MESSAGE_LIMIT + 10, line[:300]
        assert key not in line or key.isprintable()
    assert [p.name for p in folder.iterdir()] == ["r.toml"]


# Array data from outside (dataset = "arrays"): .npy files or .npz archives, stored or compressed, of any dtype, shape,
# length and value, with their bytes damaged or not. Each set loads (both splits, as long as the headers said) or is
# refused in one line; nothing is unpickled and nothing is written beside the data.
def _fuzz_arrays():
    import numpy as np
    from hypothesis.extra import numpy as hnp

    dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.float16, "U3",
                              np.complex64, ">f4", ">i8"])
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    plain = dtypes.flatmap(lambda d: hnp.arrays(d, shapes))
    return st.one_of(plain, st.just(np.array([None, 1], dtype=object)))


_ARRAY_NAMES = st.sampled_from(["x", "mfcc", "labels", "targets", "classes", "train_x", "val_x", "train_labels",
                                "val_labels", "test_x"])


@FUZZ
@given(st.dictionaries(_ARRAY_NAMES, _fuzz_arrays(), min_size=1, max_size=4),
       st.sampled_from(["folder", "stored", "compressed"]), st.lists(st.tuples(st.integers(0, 10**6),
                                                                               st.integers(0, 255)), max_size=3))
def test_array_files_load_or_are_refused_in_one_line(tmp_path_factory, arrays_, form, flips):
    import numpy as np

    from pipeline.core.errors import message_line
    from pipeline.data import arrays

    folder = tmp_path_factory.mktemp("arrays")
    if form == "folder":
        for name, value in arrays_.items():
            np.save(folder / f"{name}.npy", value, allow_pickle=True)
        path = folder
    else:
        path = folder / "set.npz"
        (np.savez if form == "stored" else np.savez_compressed)(path, **arrays_)
    files = sorted(p for p in folder.iterdir())
    for at, byte in flips:
        victim = files[at % len(files)]
        blob = bytearray(victim.read_bytes())
        if blob:
            blob[at % len(blob)] = byte
            victim.write_bytes(bytes(blob))
    table = {"path": str(path), "train": "", "val": "", "inputs": [], "val_fraction": 0.5, "split_seed": 0}
    try:
        checked = arrays.check(table, folder / "r.toml")
        loaded = [arrays.load(checked, which, {}) for which in ("train", "test")]
    except UserError as exc:
        assert len(message_line(exc).splitlines()) == 1, message_line(exc)
    else:
        for split in loaded:
            assert len(split) > 0 and all(len(a) == len(split) for a in split.inputs)
            assert split.labels is None or len(split.labels) == len(split)
            for a in split.inputs:
                assert a.dtype.kind in "biuf" and (a.dtype.kind != "f" or np.isfinite(np.asarray(a)).all())
    assert sorted(p for p in folder.iterdir()) == files


# A user's loader (dataset = "python") returning anything: nested tuples and lists of numbers (NaN and infinity
# included), strings and None. It loads as (train, val) of (inputs, target) pairs or is refused in one line.
_LOADER_VALUES = st.recursive(
    st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True, width=32), st.none(),
              st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple), max_leaves=12)


@FUZZ
@given(st.one_of(_LOADER_VALUES, st.tuples(_LOADER_VALUES, _LOADER_VALUES)))
def test_a_loader_returning_anything_loads_or_is_refused_in_one_line(tmp_path_factory, value):
    from pipeline.core.errors import message_line
    from pipeline.data import python_loader

    folder = tmp_path_factory.mktemp("loader")
    (folder / "my_data.py").write_text(f"nan, inf = float('nan'), float('inf')\ndef load():\n    return {value!r}\n")
    table = {"entry": "my_data.py:load", "inputs": [], "val_fraction": 0.2, "split_seed": 0}
    try:
        checked = python_loader.check(table, folder / "r.toml")
        split = python_loader.load(checked, "train", {})
    except UserError as exc:
        assert len(message_line(exc).splitlines()) == 1, message_line(exc)
    else:
        assert len(split) > 0 and all(len(a) == len(split) for a in split.inputs)
    assert {p.name for p in folder.iterdir()} <= {"my_data.py", "__pycache__"}
