"""Peak memory and time of reading a large array set (`make bench-arrays`): dataset = "arrays" must not read it
into memory at once.

Writes a float32 set of SIZE_MB (default 2048: 65,536 samples of 64 x 128, random normal, and int64 labels) block by
block into a folder, twice: one set split by seed (path = the folder) and one with given train/ and val/ parts. Then,
for each, a fresh child process (so that writing the files does not count) checks the recipe's [data] table (headers,
then a NaN/inf scan of every value), loads the training split (the seeded set: copied once into the array cache), loads
the evaluation split and reads a slice of EVAL_SLICE samples from it. Each child reports its resident memory after
its imports, its peak (VmHWM, which counts the mapped file pages it touched) and the time of each step. The files
were just written, so they are read from the page cache: the times are those of a warm cache.

    python -m pipeline.evidence.bench_arrays build/experiments/bench_arrays.json [SIZE_MB]
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.proc import python_module
from pipeline.core.proc import run as run_process

SAMPLE_SHAPE = (64, 128)
EVAL_SLICE = 256
BLOCK_SAMPLES = 2048


def _write_npy(path: Path, shape: tuple[int, ...], dtype: str, fill) -> None:
    """An .npy file written block by block (`fill(start, stop)` gives rows), never whole in memory."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, shape[0], BLOCK_SAMPLES):
            np.ascontiguousarray(fill(start, min(shape[0], start + BLOCK_SAMPLES)), dtype).tofile(f)


def write_set(folder: Path, samples: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    _write_npy(folder / "features.npy", (samples, *SAMPLE_SHAPE), "float32",
               lambda a, b: rng.standard_normal((b - a, *SAMPLE_SHAPE), np.float32))
    _write_npy(folder / "labels.npy", (samples,), "int64", lambda a, b: np.arange(a, b) % 10)


def _status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (this process's peak: ru_maxrss would carry the forking parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(table: dict, cache: Path) -> dict:
    """In this process: check, load both splits, read a slice; resident memory and times."""
    from pipeline.data import array_cache, arrays

    array_cache.set_root(cache)
    table = {"path": "", "train": "", "val": "", "inputs": [], "val_fraction": 0.2, "split_seed": 0, **table}
    out = {"rss_after_imports_mb": _status_mb("VmRSS")}
    start = time.perf_counter()
    checked = arrays.check(table, Path("bench.toml"))
    out["check_seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    train = arrays.load(checked, "train", {})
    out["load_train_seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    test = arrays.load(checked, "test", {})
    head = test.head(EVAL_SLICE)
    value = float(np.asarray(head.inputs[0]).sum())
    out["eval_slice_seconds"] = round(time.perf_counter() - start, 3)
    out.update(train_samples=len(train), eval_samples=len(test), slice_sum=round(value, 3),
               peak_rss_mb=_status_mb("VmHWM"), rss_at_end_mb=_status_mb("VmRSS"))
    return out


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        print(json.dumps(measure(json.loads(argv[1]), Path(argv[2]))))
        return 0
    out_path = Path(argv[0]) if argv else Path("build/experiments/bench_arrays.json")
    size_mb = int(argv[1]) if len(argv) > 1 else 2048
    samples = size_mb * (1 << 20) // (int(np.prod(SAMPLE_SHAPE)) * 4)
    work = out_path.parent / "bench_arrays_data"
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    write_set(work / "seeded", samples, 0)
    n_val = samples // 5
    write_set(work / "given" / "train", samples - n_val, 1)
    write_set(work / "given" / "val", n_val, 2)
    written = time.perf_counter() - start
    result = {"size_mb": size_mb, "samples": samples, "sample_shape": list(SAMPLE_SHAPE), "write_seconds":
              round(written, 1), "eval_slice": EVAL_SLICE}
    try:
        for name, table in (("seeded", {"path": str(work / "seeded")}), ("given", {"path": str(work / "given")})):
            cmd = python_module("pipeline.evidence.bench_arrays", "--child", json.dumps(table), str(work / "cache"))
            proc = run_process(cmd, what=f"bench_arrays {name}", timeout=1800)
            result[name] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
