"""The Python packages the LiteRT runner needs on a device (ai-edge-litert and numpy), installed on the host.

`pip install --target` with the device's platform and Python version gives a folder that is pushed once as a
.tar.gz and put on the device's PYTHONPATH. ai-edge-litert ships only manylinux_2_27 aarch64 wheels for arm64.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import sys
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.cache_dir import devices_cache

PLATFORMS = {
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64"),
}


def requirements() -> list[str]:
    """The same LiteRT and numpy versions as on the host, so device and host outputs are comparable."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in ("ai-edge-litert", "numpy")]


def litert_packages(arch: str, python_version: str) -> Path:
    """A folder with ai-edge-litert and numpy for `arch` and CPython `python_version` ('3.13'), made once."""
    if arch not in PLATFORMS:
        raise ToolError(f"litert: no wheels known for architecture {arch}")
    reqs = requirements()
    key = hashlib.sha256(f"{arch} {python_version} {reqs}".encode()).hexdigest()[:12]
    out = devices_cache() / "python-packages" / f"litert-{arch}-py{python_version}-{key}"
    if out.exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    platforms = [arg for p in PLATFORMS[arch] for arg in ("--platform", p)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--target",
            str(partial),
            *platforms,
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "--no-compile",
            *reqs,
        ],
        what=f"litert: pip install {' '.join(reqs)} for {arch} python {python_version}",
        timeout=900,
    )
    shutil.rmtree(partial / "bin", ignore_errors=True)
    partial.rename(out)
    return out
