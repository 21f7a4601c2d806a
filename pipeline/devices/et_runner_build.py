"""Build the native ExecuTorch runner (pipeline/native/et_runner.cpp) for a device architecture, once.

The headers and `libexecutorch*.so` come from the executorch wheel of the version installed here: for x86_64
the installed package itself, for aarch64 the same version's manylinux aarch64 wheel (pip download, cached).
The result is a folder `et_runner` + `lib/*.so` that runs without Python or torch on a glibc Linux device.
Android needs an NDK build instead (see docs/devices.md): these glibc libraries do not load on bionic.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.cache_dir import devices_cache

NATIVE = Path(__file__).resolve().parent.parent / "native"
SOURCES = ("et_runner.cpp", "npy_file.cpp")
HEADERS = ("npy_file.h",)
COMPILER = {"x86_64": "g++", "aarch64": "aarch64-linux-gnu-g++"}
WHEEL_PLATFORM = {"aarch64": "manylinux_2_28_aarch64"}
# Linked whether or not a symbol is used: these libraries register the XNNPACK backend and the operator
# kernels from static initialisers.
LIBS = (
    "executorch",
    "executorch_backend_xnnpack",
    "executorch_kernels_optimized",
    "executorch_kernels_quantized",
    "executorch_threadpool",
)


def executorch_version() -> str:
    return importlib.metadata.version("executorch")


def executorch_sdk(arch: str) -> Path:
    """The folder holding `include/` and `lib/` of the executorch package for `arch`."""
    if arch == "x86_64":
        # executorch is a namespace package: no __init__.py, so its folder comes from the search locations.
        return Path(list(importlib.util.find_spec("executorch").submodule_search_locations)[0])
    if arch not in WHEEL_PLATFORM:
        raise ToolError(f"et_runner: no executorch wheel for architecture {arch}")
    sdk = devices_cache() / f"executorch-{executorch_version()}-{arch}"
    if (sdk / "lib").exists():
        return sdk
    wheels = devices_cache() / "wheels"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            WHEEL_PLATFORM[arch],
            "--python-version",
            "3.11",
            "-d",
            str(wheels),
            f"executorch=={executorch_version()}",
        ],
        what=f"et_runner: pip download executorch {arch} wheel",
        timeout=900,
    )
    wheel = next(wheels.glob(f"executorch-{executorch_version()}-*{WHEEL_PLATFORM[arch]}*.whl"))
    partial = sdk.with_name(sdk.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(("executorch/include/", "executorch/lib/")) and not member.endswith("/"):
                target = partial / member.removeprefix("executorch/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
    partial.rename(sdk)
    return sdk


def build_et_runner(arch: str) -> Path:
    """A folder with `et_runner` and `lib/` for `arch` (x86_64 or aarch64), built when its inputs changed."""
    if arch not in COMPILER:
        raise ToolError(f"et_runner: no compiler configured for architecture {arch}")
    key = hashlib.sha256()
    for name in SOURCES + HEADERS:
        key.update((NATIVE / name).read_bytes())
    key.update(f"{arch} {executorch_version()} {LIBS}".encode())
    out = devices_cache() / "runners" / f"et_runner-{arch}-{key.hexdigest()[:12]}"
    if (out / "et_runner").exists():
        return out
    sdk = executorch_sdk(arch)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "lib").mkdir(parents=True)
    include = sdk / "include"
    run(
        [
            "nice",
            "-n",
            "10",
            COMPILER[arch],
            "-std=c++17",
            "-O2",
            "-DC10_USING_CUSTOM_GENERATED_MACROS",
            f"-I{include}",
            f"-I{include / 'executorch/runtime/core/portable_type/c10'}",
            f"-I{NATIVE}",
            *[str(NATIVE / s) for s in SOURCES],
            f"-L{sdk / 'lib'}",
            "-Wl,--no-as-needed",
            *[f"-l{lib}" for lib in LIBS],
            "-Wl,--as-needed",
            "-Wl,-rpath,$ORIGIN/lib",
            "-o",
            str(partial / "et_runner"),
        ],
        what=f"et_runner: compile for {arch}",
        timeout=900,
    )
    for lib in LIBS:
        shutil.copy2(sdk / "lib" / f"lib{lib}.so", partial / "lib")
    partial.rename(out)
    return out
