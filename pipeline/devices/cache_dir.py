"""Where the test devices and device-side binaries are cached, shared by every checkout on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def devices_cache() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/phone-pipeline/devices`, created on first use."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "phone-pipeline" / "devices"
    path.mkdir(parents=True, exist_ok=True)
    return path
