"""Run an artifact on a device and bring back its outputs and latencies: the one call the pipeline uses.

    result = run_model(device, Path("model.pte"), "pte", [series, features], threads=4, warmup=5, runs=20,
                       core_mask="f0", timeout=600)
    scores, embedding = result.outputs    # one array per model output, in the file's output order
    result.latencies_ms, result.device_info

The contract with the device-side runners (pipeline/native/): INPUT_0.npy ... INPUT_{n-1}.npy in, one per model
input, and OUTPUT_0.npy ... OUTPUT_{m-1}.npy out, one per model output. The runner reads the model's own input
count, shapes and dtypes and refuses arrays that differ, in one line naming the input.

What the run needs (model, runner, runtime packages) is cached on the device by sha256, so a rerun pushes only
the inputs. Every failure (no space, a runner for another ABI, a hang, a lost device) is one ToolError line
that names the device and the step.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.core.errors import ToolError
from pipeline.devices.base import Capabilities, Device
from pipeline.devices.device_abi import arch_of, elf_arch
from pipeline.devices.et_runner_build import build_et_runner
from pipeline.devices.litert_packages import litert_packages
from pipeline.devices.remote_cache import RemoteCache, Upload, tar_gz_of

NATIVE = Path(__file__).resolve().parent.parent / "native"
Format = Literal["tflite", "pte"]
# What the runners exchange; token ids are int64 (ExecuTorch) or int32 (LiteRT), masks bool.
DTYPES = ("float32", "int8", "uint8", "int32", "int64", "bool")


@dataclass
class OnDeviceResult:
    """Outputs for every input sample (one array per model output, in the file's order), per-run latencies of the
    timed runs, and what the device reported."""

    outputs: list[np.ndarray]
    latencies_ms: list[float]
    device_info: dict


def run_model(
    device: Device,
    model_path: Path,
    fmt: Format,
    inputs: np.ndarray | Sequence[np.ndarray],
    *,
    threads: int,
    warmup: int,
    runs: int,
    core_mask: str | None = None,
    timeout: float = 600,
    et_runner: Path | None = None,
) -> OnDeviceResult:
    """Run `model_path` on `device` for all `inputs`, then time `runs` runs after `warmup`.

    `inputs`: one array per model input (a lone array for a one-input model), each N samples in the file's own
    layout and dtype.

    `et_runner` replaces the runner built here for .pte files: a folder with `et_runner` (and `lib/`), or one
    static executable, such as the NDK build a target's `[device.benchmark_binaries] executorch` names.
    """
    arrays = checked_inputs(device, inputs)
    caps = device.probe()
    try:
        arch = arch_of(caps.abi)
    except ToolError as exc:
        raise ToolError(f"device {device.name}: check ABI: {exc}") from None
    uploads, runner = _runner_uploads(device, caps, arch, fmt, et_runner)
    uploads.append(Upload(Path(model_path), "model." + fmt))
    paths, pushed = RemoteCache(device).ensure(uploads, free_bytes=caps.free_bytes)

    rundir = f"{device.workdir}/run-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="on-device-") as tmp:
        local = Path(tmp)
        names = [f"INPUT_{i}.npy" for i in range(len(arrays))]
        for name, x in zip(names, arrays, strict=True):
            np.save(local / name, x)
        try:
            device.check(f"mkdir -p {rundir}/out", timeout=60, step="make run folder")
            for name in names:
                device.push(local / name, f"{rundir}/{name}")
            argv = [paths["model." + fmt], f"{rundir}/out", str(threads), str(warmup), str(runs),
                    *[f"{rundir}/{name}" for name in names]]
            pinned = bool(core_mask) and caps.has("taskset")
            command = runner(paths, argv, ["taskset", core_mask] if pinned else [])
            code, out, err = device.run(command, timeout=timeout, step=f"run {fmt} runner")
            if code != 0:
                raise ToolError(f"device {device.name}: run {fmt} runner: {_failure(code, err or out, arch)}")
            device.pull(f"{rundir}/out/latencies.json", local / "latencies.json")
            report = json.loads((local / "latencies.json").read_text())
            for j in range(report["outputs"]):
                device.pull(f"{rundir}/out/OUTPUT_{j}.npy", local / f"OUTPUT_{j}.npy")
        finally:
            _clean_up(device, rundir)
        outputs = [np.load(local / f"OUTPUT_{j}.npy") for j in range(report["outputs"])]
    info = {
        "device": device.name,
        **caps.to_dict(),
        "arch": arch,
        "runtime": report["runtime"],
        "threads": report["threads"],
        "batch": report["batch"],
        "load_ms": report["load_ms"],
        "warmup": warmup,
        "core_mask": core_mask,
        "core_mask_applied": pinned,
        "pushed": pushed,
    }
    return OnDeviceResult(outputs=outputs, latencies_ms=list(report["latencies_ms"]), device_info=info)


def checked_inputs(device: Device, inputs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """The input arrays, C-contiguous, each of a dtype the runners exchange and all with the same sample count."""
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    if not arrays:
        raise ToolError(f"device {device.name}: no input arrays given")
    for i, x in enumerate(arrays):
        if not isinstance(x, np.ndarray) or x.dtype.name not in DTYPES or x.ndim < 1:
            what = f"{x.dtype.name} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ToolError(f"device {device.name}: input {i}: a {what}; expected an array (N, ...) of "
                            f"{', '.join(DTYPES)}")
        if len(x) != len(arrays[0]):
            raise ToolError(f"device {device.name}: input {i} has {len(x)} samples, input 0 has {len(arrays[0])}")
    return [np.ascontiguousarray(x) for x in arrays]


def _runner_uploads(device: Device, caps: Capabilities, arch: str, fmt: str, et_runner: Path | None):
    """What must be on the device to run `fmt`, and a function making the command line from their paths."""
    if fmt == "pte":
        given = Path(et_runner) if et_runner else build_et_runner(arch)
        executable = given / "et_runner" if given.is_dir() else given
        built_for = elf_arch(executable)
        if built_for != arch:
            raise ToolError(
                f"device {device.name}: check runner: {executable.name} is built for {built_for}, device is {arch}"
            )

        def et_command(paths: dict[str, str], argv: list[str], pin: list[str]) -> str:
            where = f"{paths['et_runner']}/et_runner" if given.is_dir() else paths["et_runner"]
            return shlex.join([*pin, where, *argv])

        if given.is_dir():
            return [Upload(tar_gz_of(given), "et_runner", unpack=True)], et_command
        return [Upload(given, "et_runner")], et_command
    if fmt == "tflite":
        if not caps.has("python3"):
            raise ToolError(
                f"device {device.name}: run tflite runner: no python3 on the device "
                "(Android phones use TFLite's benchmark_model; see the target's [device] runtimes)"
            )
        version = device.check(
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            timeout=120,
            step="python version",
        ).strip()
        packages = tar_gz_of(litert_packages(arch, version))

        def litert_command(paths: dict[str, str], argv: list[str], pin: list[str]) -> str:
            runner = shlex.join([*pin, "python3", paths["litert_runner.py"], *argv])
            return f"PYTHONPATH={shlex.quote(paths['litert'])} exec {runner}"

        uploads = [
            Upload(packages, "litert", unpack=True),
            Upload(NATIVE / "litert_runner.py", "litert_runner.py"),
        ]
        return uploads, litert_command
    raise ToolError(f"device {device.name}: unknown artifact format {fmt!r}; expected 'tflite' or 'pte'")


def _failure(code: int, text: str, arch: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(("I ", "INFO:"))]
    last = lines[-1] if lines else "no output"
    if code in (126, 127) or "Exec format error" in text:
        return f"exit code {code}: the runner does not start on this device ({arch}?): {last}"
    return f"exit code {code}: {last}"


def _clean_up(device: Device, rundir: str) -> None:
    """Remove the run's temporary files; best effort, a lost device must not hide the first error."""
    try:
        device.run(f"rm -rf {shlex.quote(rundir)}", timeout=60, step="clean up")
    except ToolError:
        pass
