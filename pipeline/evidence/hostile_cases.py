"""The hostile-input cases of issue 23, one or more per cause, run through the real CLI: what each printed, its exit
code, its time, its peak memory and what it left behind (`make evidence-hostile`).

Each case builds its files (archives, bundles, run folders, recipes) in a folder of its own under one temporary root,
then runs `python -m pipeline ...` (or `python -m pipeline.android copy-bundle`) as a child process in that folder,
with TMPDIR pointed at a folder of the case's own, so a temporary file the child leaves is seen. The child is reaped
with os.wait4: its peak resident memory is the largest ru_maxrss of the child and of the children it waited for
(a maximum, not a sum). Leftovers are the files that appeared in the case's folder (besides those the case expects),
in its TMPDIR, in the repository's top folder and build/logs, and in the system temp folder under a name holding
the child's pid.

Disk full (cause 9) is a real one: a small tmpfs mounted for the case (needs root and `mount`; without them the cases
are recorded as skipped, never faked). The run and release of cause 9 and 10 are real ones, on the bundled recipe
reduced to seconds of work and a target that builds only the fp32 TFLite artifact.

    python -m pipeline.evidence.hostile_cases build/evidence [CASE-PREFIX ...]
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import atomic_write_bytes, atomic_write_json
from pipeline.core.proc import venv_env
from pipeline.release import archive, checksums

ROOT = Path(__file__).resolve().parents[2]
SHOWN_CHARS = 300
ASSETS = ("assets",)  # copy-bundle makes the parent of --dest; what lands inside it is checked
NAME = "hostile-0.1.0-host"
PTE = "models/pte-fp32.pte"
OUTPUTS = "samples/outputs/pte-fp32.npy"
REDUCED = {"data": {"eval_samples": "200", "calibration_samples": "32"},
           "train": {"epochs": "1", "max_train_samples": "2000"}, "prune": {"enabled": "false"}}
TARGET = """[target]
name = "ev-host"
description = "host, the fp32 TFLite artifact only (hostile-case evidence)"
[device]
kind = "host"
[compute]
threads = 1
[artifacts]
build = ["tflite-fp32"]
[benchmark]
warmup = 2
runs = 5
threads = 1
min_rounds = 2
max_rounds = 2
max_seconds = 10
"""


@dataclass
class Case:
    """One command on hostile input. `prepare(folder)` builds its files and returns the arguments after
    `python -m`; `after(folder)` returns what the case must not have left (paths or facts), empty when clean."""

    key: str
    cause: int
    title: str
    demand: str  # what the issue asks of it: "exit 2" or "exit 0"
    prepare: Callable[[Path], list[str]]
    after: Callable[[Path], list[str]] = lambda folder: []
    expected_new: tuple[str, ...] = ()  # top-level names in the case folder the command may create
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300.0
    needs_mount: bool = False
    pick: str = ""  # for a case that succeeds: show the first line of its output holding this
    note: Callable[[Path], str] = lambda folder: ""  # what else shows the case's outcome


# ----- the files the cases are made of ---------------------------------------------------------------------------


def _tiny_pte() -> bytes:
    import torch

    from pipeline.converters.executorch_lowering import lower

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    return lower(model, torch.zeros(1, 1, 4, 4))[0]


def good_bundle(root: Path) -> Path:
    """A small bundle that verifies: a real XNNPACK .pte of a 16 -> 3 linear model on 4x4 grey pictures, its
    outputs recorded by the child-process runner verify uses (as tests/test_verify_hostile.py makes it)."""
    from pipeline.artifacts.artifact import Artifact
    from pipeline.artifacts.preprocess import InputSpec
    from pipeline.release import samples

    spec = InputSpec(height=4, width=4, channels=1, mean=(0.5,), std=(0.5,))
    (root / "models").mkdir(parents=True)
    model = _tiny_pte()
    (root / PTE).write_bytes(model)
    pictures = np.random.default_rng(0).integers(0, 256, (4, 4, 4), dtype=np.uint8)
    entries = samples.write_pictures(root, pictures, np.array([0, 1, 2, 0]))
    (root / "samples" / "outputs").mkdir()
    x = samples.inputs(root, entries, spec)
    y = samples.outputs(Artifact("pte-fp32", str(root / PTE), "pte", "fp32", "NCHW", (1, 1, 4, 4)), x)[0]
    (root / OUTPUTS).write_bytes(samples.npy_bytes(y))
    artifact = {"name": "pte-fp32", "file": PTE, "format": "pte", "precision": "fp32", "layout": "NCHW",
                "input_shape": [1, 1, 4, 4], "input_dtype": "float32", "input_quantization": None,
                "output_quantization": None, "sha256": hashlib.sha256(model).hexdigest(), "sample_outputs": OUTPUTS}
    meta = {"schema": "phone-pipeline/bundle/1",
            "model": {"name": "hostile", "version": "0.1.0", "task": "image-classification"},
            "input": spec.to_dict(), "labels": ["a", "b", "c"], "output": {"kind": "logits", "classes": 3},
            "artifacts": [artifact], "samples": entries}
    (root / "metadata.json").write_text(json.dumps(meta, indent=2))
    checksums.write(root)
    return root


class Bundles:
    """The good bundle, made once and copied into each case that changes it."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self._good: Path | None = None

    def copy(self, folder: Path) -> Path:
        if self._good is None:
            self._good = good_bundle(self.scratch / "good" / NAME)
        return Path(shutil.copytree(self._good, folder / NAME))


def _end_of(tar_bytes: bytes) -> bytes:
    """A tar stream without its end-of-archive blocks, so more members can follow."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + (-(-last.size // 512) * 512)
    return tar_bytes[:end]


def _member(name: str, payload: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info.tobuf(tarfile.GNU_FORMAT) + payload + bytes(-len(payload) % 512)


def pax_bomb(path: Path, n: int = 1 << 20) -> Path:
    """CVE-2024-6232's reproducer as the issue gives it: a pax header declaring one `path=999...` record of n bytes,
    then a normal member, gzipped."""
    h = tarfile.TarInfo("x")
    h.size, h.type = n, tarfile.XHDTYPE
    record = (b"%d path=" % n).ljust(n - 1, b"9") + b"\n"
    raw = h.tobuf(tarfile.USTAR_FORMAT) + record + bytes(-len(record) % 512) + _member("x", b"x") + bytes(1024)
    path.write_bytes(gzip.compress(raw))
    return path


def gnu_long_name_bomb(path: Path, declared: int = 1536 << 20) -> Path:
    """A GNU long-name header declaring `declared` bytes of name (1.5 GB) that carries 512 of them, then a normal
    member: a file of a few hundred bytes that claims the name."""
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, declared
    raw = info.tobuf(tarfile.GNU_FORMAT) + b"a" * 512 + _member("x", b"x") + bytes(1024)
    path.write_bytes(gzip.compress(raw))
    return path


def bundle_archive_with(bundle: Path, path: Path, extra: list[tuple[str, bytes]]) -> Path:
    """`bundle` packed as the release packs it, with `extra` members (name, payload) appended after its own."""
    good = gzip.decompress(archive.tar_gz_bytes(bundle, bundle.name))
    raw = _end_of(good) + b"".join(_member(name, payload) for name, payload in extra) + bytes(1024)
    path.write_bytes(gzip.compress(raw))
    return path


def bundle_archive_dated(bundle: Path, path: Path, mtime: float) -> Path:
    """`bundle` packed with every member dated `mtime` (pax stores any number)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in [bundle, *sorted(bundle.rglob("*"))]:
            info = tar.gettarinfo(p, f"{bundle.name}/{p.relative_to(bundle).as_posix()}".rstrip("/."))
            info.mtime = mtime
            tar.addfile(info, p.open("rb") if p.is_file() else None)
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _edit_metadata(bundle: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    change(meta)
    (bundle / "metadata.json").write_text(json.dumps(meta))
    checksums.write(bundle)  # as a careful attacker would: the sums match


def memory_bomb(bundle: Path) -> Path:
    """The issue's metadata bomb: input 4096x4096x3 and 40 samples that all name one 28x28 PNG."""
    from pipeline.release import samples

    (bundle / "samples" / "0000.png").write_bytes(samples.png_bytes(np.zeros((28, 28), np.uint8)))

    def bomb(meta: dict) -> None:
        meta["input"] = {"height": 4096, "width": 4096, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}
        meta["artifacts"][0]["input_shape"] = [1, 3, 4096, 4096]
        meta["samples"] = [dict(meta["samples"][0]) for _ in range(40)]

    _edit_metadata(bundle, bomb)
    return bundle


def run_folder(folder: Path, name: str, recipe_path: str = "", fmt: str = "tflite") -> Path:
    """A run folder whose manifest records one artifact `name` (as tests/test_hostile_run_folders.py makes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_bytes(b"not a model")
    art = {"name": name, "format": fmt, "precision": "fp32", "path": str(folder / "model.bin"), "sha256": "",
           "size_bytes": 11, "layout": "NHWC", "input_shape": [1, 28, 28, 1]}
    doc = {"created": "now", "recipe": {"name": "user", "path": recipe_path, "sha256": "", "settings": {}},
           "target": {"name": "host", "path": ""}, "host": {}, "tools": {}, "options": {},
           "stages": [{"name": "to_tflite", "cached": False, "seconds": 0, "data": {}, "artifacts": [art]}]}
    (folder / "manifest.json").write_text(json.dumps(doc))
    return folder


def image_folder(root: Path, first: int = 3000, others: tuple[int, int] = (48, 64), count: int = 6) -> Path:
    """Three classes of noise pictures; the first of each (by name) is first x first, the rest `others` (h, w)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate([(first, first)] + [others] * count):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"{i:03d}.png")
    return root


def reduced_recipe(path: Path) -> Path:
    """The bundled recipe (same name, so the same bundle name) reduced to seconds of work: REDUCED's values replace
    the file's, or are put first in their table."""
    import tomllib

    text = (ROOT / "pipeline" / "recipes" / "fashion-mnist-mobilenetv2.toml").read_text()
    present = tomllib.loads(text)
    lines, table = [], ""
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if table in REDUCED and key in REDUCED[table]:
            line = f"{key} = {REDUCED[table][key]}"
        lines.append(line)
        if line.startswith("[") and not line.startswith("[["):
            table = line.strip().strip("[]")
            lines += [f"{k} = {v}" for k, v in REDUCED.get(table, {}).items() if k not in present.get(table, {})]
    path.write_text("\n".join(lines) + "\n")
    return path


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _missing(*paths: Path) -> list[str]:
    """The paths that exist (each one a leftover)."""
    return [f"{p} exists" for p in paths if p.exists()]


class TinyDisk:
    """A tmpfs of `size` mounted at `path` while the case runs (root only)."""

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and shutil.which("mount") is not None

    @staticmethod
    def mount(path: Path, size: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                       capture_output=True)

    @staticmethod
    def unmount(path: Path) -> None:
        subprocess.run(["umount", str(path)], check=False, capture_output=True)


# ----- the cases -------------------------------------------------------------------------------------------------


def cases(bundles: Bundles, shared: Path) -> list[Case]:
    """Every case, in the issue's order of causes. `shared` holds the build folder the real runs share."""
    cli = ["pipeline"]
    copy_bundle = ["pipeline.android", "copy-bundle"]
    build = shared / "build"
    target = shared / "ev-host.toml"
    recipe = shared / "fashion-mnist-mobilenetv2.toml"
    mounts = shared / "mounts"
    run_args = ["--recipe", str(recipe), "--target", str(target), "--build-dir", str(build)]

    def shared_run() -> None:
        """The reduced recipe run once into the shared build folder (not measured): the cache the cases reuse."""
        if not (build / "runs").exists():
            subprocess.run([sys.executable, "-m", *cli, "run", *run_args], env=_child_env(), cwd=shared, check=True,
                           capture_output=True)

    def verify(path_of: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda folder: [*cli, "verify", str(path_of(folder))]

    def copy_into_dest(path_of: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
        return lambda folder: [*copy_bundle, str(path_of(folder)), "--dest", str(folder / "assets" / "bundle")]

    def nothing_in_assets(folder: Path) -> list[str]:
        return [str(p) for p in (folder / "assets").rglob("*")] if (folder / "assets").exists() else []

    def escaped_debug(folder: Path) -> list[str]:
        run = run_folder(folder / "a" / "b" / "c" / "run", "../../../ESCAPED")
        return [*cli, "debug", str(run), "../../../ESCAPED"]

    def escaped_profile(folder: Path) -> list[str]:
        name = str(folder / "elsewhere" / "ESCAPED")
        return [*cli, "profile", str(run_folder(folder / "run", name)), name]

    def hostile_recipe_path(folder: Path) -> list[str]:
        evil = folder / "evil.py"
        evil.write_text(f"import pathlib\npathlib.Path({str(folder / 'IMPORTED')!r}).write_text('x')\n"
                        "def build(**kw):\n    import torch\n    return torch.nn.Linear(1, 1)\n")
        recipe = folder / "user.toml"
        recipe.write_text(f'[recipe]\nname = "user"\n[model]\nsource = "python"\nentry = "{evil}:build"\n')
        return [*cli, "debug", str(run_folder(folder / "run", "tflite-fp32", str(recipe))), "tflite-fp32"]

    def sparse_3gb(folder: Path) -> list[str]:
        bundle = bundles.copy(folder)
        with (bundle / "models" / "huge.bin").open("wb") as f:
            f.truncate(3 << 30)  # sparse: no disk used
        return [*copy_bundle, str(bundle), "--dest", str(folder / "assets" / "bundle")]

    def copy_onto_full_disk(folder: Path) -> list[str]:
        bundle = bundles.copy(folder)
        disk = mounts / "copy"
        TinyDisk.mount(disk, "16k")
        return [*copy_bundle, str(bundle), "--dest", str(disk / "bundle")]

    def newline_member(folder: Path) -> Path:
        return bundle_archive_with(bundles.copy(folder), folder / "bundle.tar.gz",
                                   [(f"{NAME}/x\nerror: fine: all good", b"x")])

    def long_member(folder: Path) -> Path:
        return bundle_archive_with(bundles.copy(folder), folder / "bundle.tar.gz", [(f"{NAME}/" + "n" * 8000, b"x")])

    def newline_recipe_path(folder: Path) -> list[str]:
        recipe = folder / "r\nerror: fine: all good.toml"
        recipe.write_text('[recipe]\nname = "r"\n')
        return [*cli, "run", "--recipe", str(recipe), "--build-dir", str(folder / "build")]

    def newline_toml_key(folder: Path) -> list[str]:
        recipe = folder / "r.toml"
        recipe.write_text('[recipe]\nname = "r"\n[train]\n"epochs\\nerror: fine: all good" = 1\n')
        return [*cli, "run", "--recipe", str(recipe), "--build-dir", str(folder / "build")]

    def digits_metadata(folder: Path) -> Path:
        bundle = bundles.copy(folder)
        meta = (bundle / "metadata.json").read_text()
        (bundle / "metadata.json").write_text(meta.replace('"classes": 3', '"classes": ' + "9" * 5000))
        checksums.write(bundle)
        return bundle

    def digits_manifest(folder: Path) -> list[str]:
        (folder / "run").mkdir()
        (folder / "run" / "manifest.json").write_text('{"created": ' + "9" * 5000 + "}")
        return [*cli, "report", str(folder / "run")]

    def release_none(folder: Path) -> list[str]:
        return [*cli, "release", "--recipe", str(folder / "none.toml"), "--build-dir", str(folder / "build")]

    def run_on_full_disk(folder: Path) -> list[str]:
        # The cache of the shared run, copied onto a disk with room for it but not for the to_tflite output: the
        # run takes its earlier stages from the cache and fills the disk in to_tflite, as the run did.
        shared_run()
        disk = mounts / "build"
        cache = build / "cache"
        kept = [p for p in cache.iterdir() if p.name != "to_tflite"]
        pages = sum(-(-f.stat().st_size // 4096) if f.is_file() else 1 for p in kept for f in p.rglob("*"))
        TinyDisk.mount(disk, str((pages + 64) * 4096))  # 256 KB of room: to_tflite's output is bigger
        for p in kept:
            shutil.copytree(p, disk / "build" / "cache" / p.name, symlinks=True)
        return [*cli, "run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(disk / "build")]

    def release_onto_full_disk(folder: Path) -> list[str]:
        shared_run()
        disk = mounts / "release"
        TinyDisk.mount(disk, "64k")
        return [*cli, "release", *run_args, "--out", str(disk / "release")]

    def release_after_kill(folder: Path) -> list[str]:
        dead = dead_pid()
        stale = folder / "release" / f".fashion-mnist-mobilenetv2-0.1.0-ev-host.{dead}.abcd1234"
        (stale / "fashion-mnist-mobilenetv2-0.1.0-ev-host").mkdir(parents=True)
        (folder / "tmp" / f"pipeline-outputs.{dead}.abcd1234").mkdir(parents=True)
        shared_run()
        return [*cli, "release", *run_args, "--out", str(folder / "release")]

    def stale_release(folder: Path) -> list[str]:
        return [str(p) for p in (folder / "release").iterdir() if p.name.startswith(".")] + \
            [str(p) for p in (folder / "tmp").iterdir()]

    def verify_after_kill(folder: Path) -> list[str]:
        bundle = bundles.copy(folder)
        packed = folder / "bundle.tar.gz"
        packed.write_bytes(archive.tar_gz_bytes(bundle, NAME))
        killed = kill_verify_midway(packed, folder / "tmp")
        (folder / "killed.txt").write_text("\n".join(killed) + "\n")
        return [*cli, "verify", str(packed)]

    def init_3000(folder: Path) -> list[str]:
        return [*cli, "init", "--model", "mobilenet_v2_small", "--data", str(image_folder(folder / "pics")),
                "--out", str(folder / "mine.toml")]

    def dry_run_3000(folder: Path) -> list[str]:
        recipe = folder / "pics.toml"
        recipe.write_text(f'[recipe]\nname = "pics"\n[model]\narch = "mobilenet_v2_small"\n[model.settings]\n'
                          f'num_classes = 3\n[data]\ndataset = "image-folder"\npath = '
                          f'"{image_folder(folder / "pics")}"\n')
        return [*cli, "run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(folder / "build"),
                "--dry-run", "-v"]

    def afile(folder: Path, below: str = "") -> Path:
        (folder / "afile").write_text("")
        return folder / "afile" / below if below else folder / "afile"

    def long_names(folder: Path) -> list[str]:
        recipe_text = (ROOT / "pipeline" / "recipes" / "fashion-mnist-mobilenetv2.toml").read_text()
        recipe = folder / "r.toml"
        recipe.write_text(recipe_text.replace('name = "fashion-mnist-mobilenetv2"', f'name = "{"r" * 128}"'))
        long_target = folder / "t.toml"
        long_target.write_text(TARGET.replace('name = "ev-host"', f'name = "{"t" * 128}"'))
        return [*cli, "run", "--recipe", str(recipe), "--target", str(long_target), "--build-dir",
                str(folder / "build")]

    def fifo_recipe(folder: Path) -> list[str]:
        os.mkfifo(folder / "recipe.toml")
        return [*cli, "run", "--recipe", str(folder / "recipe.toml"), "--build-dir", str(folder / "build")]

    refused = "exit 2"
    return [
        Case("1-pax-verify", 1, "verify of a .tar.gz whose pax header declares 1 MB of path=999...", refused,
             verify(lambda f: pax_bomb(f / "pax.tar.gz"))),
        Case("1-pax-copy-bundle", 1, "copy-bundle of the same .tar.gz", refused,
             copy_into_dest(lambda f: pax_bomb(f / "pax.tar.gz")), nothing_in_assets, ASSETS),
        Case("2-gnu-verify", 2, "verify of a .tar.gz whose GNU long name declares 1.5 GB", refused,
             verify(lambda f: gnu_long_name_bomb(f / "gnu.tar.gz"))),
        Case("2-gnu-copy-bundle", 2, "copy-bundle of the same .tar.gz", refused,
             copy_into_dest(lambda f: gnu_long_name_bomb(f / "gnu.tar.gz")), nothing_in_assets, ASSETS),
        Case("3-bomb-copy-bundle", 3, "copy-bundle of a bundle folder declaring 4096x4096x3 and 40 samples of one "
             "28x28 PNG", refused, copy_into_dest(lambda f: memory_bomb(bundles.copy(f))), nothing_in_assets, ASSETS),
        Case("3-bomb-verify", 3, "verify of the same folder", refused, verify(lambda f: memory_bomb(bundles.copy(f)))),
        Case("4-debug-dotdot", 4, "debug RUN ../../../ESCAPED (the manifest names that artifact)", refused,
             escaped_debug, lambda f: _missing(f / "ESCAPED", f / "ESCAPED.md", f / "a" / "ESCAPED.md")),
        Case("4-profile-abs", 4, "profile RUN /abs/path/ESCAPED (the manifest names that artifact)", refused,
             escaped_profile, lambda f: _missing(f / "elsewhere")),
        Case("4-debug-recipe-path", 4, "debug of a run whose manifest's recipe.path names a recipe whose model is an "
             "attacker's .py", refused, hostile_recipe_path, lambda f: _missing(f / "IMPORTED")),
        Case("5-sparse-3gb", 5, "copy-bundle of a bundle folder holding a 3 GB sparse file", refused, sparse_3gb,
             nothing_in_assets, ASSETS),
        Case("5-full-disk", 5, "copy-bundle of a good bundle onto a 16 KB tmpfs (a real full disk)", refused,
             copy_onto_full_disk, lambda f: [str(p) for p in (mounts / "copy").iterdir()], needs_mount=True),
        Case("6-newline-member", 6, "verify of a .tar.gz with a member named 'x\\nerror: fine: all good'", refused,
             verify(newline_member)),
        Case("6-8kb-member", 6, "verify of a .tar.gz with an 8,000-character member name", refused,
             verify(long_member)),
        Case("6-newline-recipe-path", 6, "run --recipe 'r\\nerror: fine: all good.toml'", refused,
             newline_recipe_path, lambda f: _missing(f / "build")),
        Case("6-newline-toml-key", 6, "run of a recipe whose [train] key is 'epochs\\nerror: fine: all good'",
             refused, newline_toml_key, lambda f: _missing(f / "build")),
        Case("7-digits-verify", 7, "verify of a bundle folder whose metadata holds a 5,000-digit integer", refused,
             verify(digits_metadata), lambda f: _missing(f / "build")),
        Case("7-digits-report", 7, "report of a run folder whose manifest holds a 5,000-digit integer", refused,
             digits_manifest, lambda f: _missing(f / "build")),
        Case("8-epoch-release", 8, "release with SOURCE_DATE_EPOCH=11111111111111111111111 (23 digits)", refused,
             release_none, lambda f: _missing(f / "build"), env={"SOURCE_DATE_EPOCH": "1" * 23}),
        Case("8-dated-copy-bundle", 8, "copy-bundle of a .tar.gz whose members are dated 1e22", refused,
             copy_into_dest(lambda f: bundle_archive_dated(bundles.copy(f), f / "dated.tar.gz", 10**22)),
             nothing_in_assets, ASSETS),
        Case("9-release-full-disk", 9, "release --out on a 64 KB tmpfs (its run comes from the cache of a "
             "real run of the reduced recipe)", refused, release_onto_full_disk,
             lambda f: [str(p) for p in (mounts / "release").rglob("*") if p.name.startswith(".")],
             timeout=1800, needs_mount=True),
        Case("9-run-full-disk", 9, "run --build-dir on a tmpfs with room for the cached stages but not for "
             "to_tflite's output", refused, run_on_full_disk, timeout=1800, needs_mount=True),
        Case("10-verify-after-kill", 10, "verify killed with SIGKILL midway, then verify again: the next start removes "
             "its pipeline-verify.* and pipeline-outputs.*", "exit 0", verify_after_kill,
             lambda f: [str(p) for p in (f / "tmp").iterdir()], expected_new=("killed.txt",),
             note=lambda f: "the SIGKILLed verify had left " + ", ".join((f / "killed.txt").read_text().split())),
        Case("10-release-after-kill", 10, "release with a killed release's .NAME.PID.* beside the bundles and a "
             "pipeline-outputs.PID.* in TMPDIR (dead PID)", "exit 0", release_after_kill, stale_release,
             expected_new=("release",), timeout=1800, pick=" ships ",
             note=lambda f: "left before it by a dead pid: release/.fashion-mnist-mobilenetv2-0.1.0-ev-host.PID."
             "abcd1234/, $TMPDIR/pipeline-outputs.PID.abcd1234/; after it: " +
             ", ".join(sorted(p.name for p in (f / "release").iterdir()))),
        Case("11-init-3000", 11, "init on an image folder whose first picture (of each class) is 3000x3000, "
             "the other 18 48x64", "exit 0", init_3000, expected_new=("mine.toml",),
             note=lambda f: " / ".join(line for line in (f / "mine.toml").read_text().splitlines()
                                       if "median short side" in line or line.startswith(("height", "width")))),
        Case("11-dry-run-3000", 11, "run --dry-run of a recipe on that folder without [input]", "exit 0",
             dry_run_3000, expected_new=("build",), pick="model input"),
        Case("12-build-dir-file", 12, "run --build-dir FILE", refused,
             lambda f: [*cli, "run", "--build-dir", str(afile(f))]),
        Case("12-build-dir-under-file", 12, "run --build-dir FILE/sub/dir", refused,
             lambda f: [*cli, "run", "--build-dir", str(afile(f, "sub/dir"))]),
        Case("12-run-dir-file", 12, "run --run-dir FILE", refused,
             lambda f: [*cli, "run", "--run-dir", str(afile(f)), "--build-dir", str(f / "build")],
             lambda f: _missing(f / "build")),
        Case("12-long-names", 12, "run of a recipe and a target with valid 128-character names", refused,
             long_names, lambda f: _missing(f / "build" / "runs")),
        Case("13-set-newline", 13, "run --set 'train.epochs=1\\n[evil]\\nx=1'", refused,
             lambda f: [*cli, "run", "--set", "train.epochs=1\n[evil]\nx=1", "--build-dir", str(f / "build")],
             lambda f: _missing(f / "build")),
        Case("13-fifo-recipe", 13, "run --recipe FIFO", refused, fifo_recipe, lambda f: _missing(f / "build"),
             timeout=60),
    ]


def kill_verify_midway(packed: Path, tmp: Path) -> list[str]:
    """Start verify on `packed` with TMPDIR=tmp, SIGKILL it once its outputs folder exists; the names it left."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**_child_env(), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "verify", str(packed)], cwd=packed.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(tmp.glob(f"pipeline-outputs.{proc.pid}.*")) and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sorted(p.name for p in tmp.iterdir())


# ----- running and measuring -------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = venv_env()
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("PIPELINE_NO_PROGRESS", "1")
    env.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.is_dir() else set()


def _outside() -> set[Path]:
    """What a child could leave outside its folders: the repository's top folder and its build/logs."""
    return {p for p in ROOT.iterdir()} | _files(ROOT / "build" / "logs")


# The child is started by a small launcher, not by this process: on Linux a child's ru_maxrss starts from the RSS of
# the process it was forked from (fork copies the high-water mark, exec keeps it), and this process holds torch after
# it built the bundle. The launcher forks the command from its own few MB, waits for it with wait4 and writes what
# wait4 said; setsid makes the launcher and the command one process group, killed whole on a timeout.
LAUNCHER = """
import json, os, sys, time
os.setsid()
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.monotonic() - start
with open(sys.argv[1], "w") as f:
    json.dump({"pid": pid, "exit": os.waitstatus_to_exitcode(status), "seconds": seconds,
               "peak_kb": usage.ru_maxrss}, f)
"""


def measure(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict:
    """Run `python -m argv` in `cwd`; its exit code, stderr, wall seconds and peak RSS (KB, from wait4)."""
    out, err, said = (cwd.parent / f"{cwd.name}.{part}" for part in ("stdout", "stderr", "rusage"))
    with out.open("wb") as fout, err.open("wb") as ferr:
        launcher = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(said), sys.executable, "-m", *argv],
                                    cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr)
        try:
            launcher.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
            timed_out = True
    usage = json.loads(said.read_text()) if said.exists() else {"pid": -1, "exit": None, "seconds": timeout,
                                                                 "peak_kb": 0}
    return {**usage, "seconds": round(usage["seconds"], 3), "timed_out": timed_out,
            "stderr": err.read_text(errors="replace"), "stdout": out.read_text(errors="replace")}


def floor_kb(root: Path) -> int:
    """The peak RSS of a bare `python -m timeit -n 1 pass` measured the same way: the least any case can show."""
    folder = root / "floor"
    folder.mkdir()
    return measure(["timeit", "-n", "1", "pass"], folder, _child_env(), 60)["peak_kb"]


def _shown_argv(argv: list[str], root: Path) -> str:
    return " ".join(json.dumps(a) if any(c in a for c in " \n") else a for a in argv).replace(str(root), "$T")


def _printed(result: dict, pick: str) -> list[str]:
    """The lines a user reads: stderr's 'error' lines; else the first line holding `pick`; else the last line of
    stdout, or of stderr."""
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error")]
    if errors:
        return errors
    lines = (result["stderr"] + "\n" + result["stdout"]).splitlines()
    picked = [line for line in lines if pick and pick in line][:1]
    out = [line for line in result["stdout"].splitlines() if line.strip()]
    return picked or out[-1:] or [line for line in result["stderr"].splitlines() if line.strip()][-1:]


def run_case(case: Case, root: Path) -> dict:
    folder = root / case.key
    folder.mkdir()
    tmp = folder / "tmp"
    tmp.mkdir()
    entry = {"key": case.key, "cause": case.cause, "case": case.title, "demand": case.demand}
    if case.needs_mount and not TinyDisk.available():
        return {**entry, "skipped": "mounting a tmpfs needs root and mount(8)"}
    argv = case.prepare(folder)
    env = {**_child_env(), "TMPDIR": str(tmp), **case.env}
    before_tmp = _files(tmp)
    before, outside, system_tmp = _files(folder), _outside(), set(Path(tempfile.gettempdir()).iterdir())
    result = measure(argv, folder, env, case.timeout)
    new = sorted(str(p.relative_to(folder)) for p in _files(folder) - before
                 if p.relative_to(folder).parts[0] not in ("tmp", *case.expected_new))
    left = [f"$CASE/{name}" for name in new]
    left += [f"$TMPDIR/{p.relative_to(tmp)}" for p in sorted(_files(tmp) - before_tmp) if p.parent == tmp]
    left += [f"outside: {p}" for p in sorted(_outside() - outside)]
    left += [f"outside: {p}" for p in sorted(set(Path(tempfile.gettempdir()).iterdir()) - system_tmp)
             if str(result["pid"]) in p.name]
    left += [f"left: {p}".replace(str(root), "$T") for p in case.after(folder)]
    printed = _printed(result, case.pick)
    one_line_exit_2 = result["exit"] == 2 and len(printed) == 1 and "Traceback" not in result["stderr"]
    behaved = (one_line_exit_2 if case.demand == "exit 2" else result["exit"] == 0) and not left
    return {**entry, "command": _shown_argv(["python", "-m", *argv], root), "exit": result["exit"],
            "printed": [line[:SHOWN_CHARS].replace(str(root), "$T") for line in printed],
            "stderr_lines": len(result["stderr"].splitlines()), "seconds": result["seconds"],
            "peak_mb": round(result["peak_kb"] / 1024, 1), "leftovers": left, "timed_out": result["timed_out"],
            "behaved": behaved, "note": case.note(folder).replace(str(root), "$T")}


def _prepare_shared(shared: Path) -> None:
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "ev-host.toml").write_text(TARGET)
    reduced_recipe(shared / "fashion-mnist-mobilenetv2.toml")


def run_all(root: Path, only: list[str] | None = None) -> list[dict]:
    """Every case (or those whose key starts with one of `only`) under `root`; mounts are undone at the end."""
    shared = root / "shared"
    _prepare_shared(shared)
    bundles = Bundles(shared)
    results = []
    try:
        for case in cases(bundles, shared):
            if only and not any(case.key.startswith(prefix) for prefix in only):
                continue
            print(f"{case.key} ...", file=sys.stderr, flush=True)
            results.append(run_case(case, root))
            done = results[-1]
            print(f"  exit {done.get('exit')} in {done.get('seconds')} s, {done.get('peak_mb')} MB: "
                  f"{(done.get('printed') or [done.get('skipped')])[0]}", file=sys.stderr, flush=True)
    finally:
        mounts = shared / "mounts"
        for disk in sorted(mounts.iterdir()) if mounts.exists() else []:
            TinyDisk.unmount(disk)
    return results


def markdown(results: list[dict]) -> str:
    """The table of the note: case, exit, what it printed, seconds, peak MB, leftovers."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "\\n")

    rows = ["| cause | case | exit | printed (first 300 chars) | s | peak MB | leftovers | as demanded | note |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "skipped" in r:
            rows.append(f"| {r['cause']} | {cell(r['case'])} | - | skipped: {r['skipped']} | - | - | - | - | |")
            continue
        printed = "<br>".join(f"`{cell(line)}`" for line in r["printed"]) or "(nothing)"
        left = "<br>".join(cell(x) for x in r["leftovers"]) or "none"
        rows.append(f"| {r['cause']} | {cell(r['case'])} | {r['exit']} | {printed} | {r['seconds']:.2f} | "
                    f"{r['peak_mb']:.0f} | {left} | {'yes' if r['behaved'] else '**no**'} | {cell(r['note'])} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("build/evidence")
    only = argv[1:] or None
    with tempfile.TemporaryDirectory(prefix="hostile-cases.") as tmp:
        floor = floor_kb(Path(tmp))
        results = run_all(Path(tmp), only)
    name = "hostile_cases" if not only else "hostile_cases." + "+".join(only)
    atomic_write_json(out / f"{name}.json", {"python": sys.version.split()[0], "floor_peak_mb": round(floor / 1024, 1),
                                               "cases": results})
    atomic_write_bytes(out / f"{name}.md", markdown(results).encode())
    print(markdown(results))
    return 0 if all(r.get("behaved", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
