"""The Android build tools, found or installed on first use (idempotent).

Bookworm has aapt/aapt2, zipalign and apksigner; the platform's android.jar (API 23) and the dex compiler `dx` are
only packaged in bullseye. Those two .debs are downloaded with a private apt configuration (the system's apt sources
stay untouched; the mirror is the one this machine already uses) and unpacked with `dpkg-deb -x` into
${XDG_CACHE_HOME:-~/.cache}/phone-pipeline/android, so every checkout and CI run on the machine reuses them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.testbed.foreign_suite_debs import download_debs

# command -> the bookworm package that provides it
BOOKWORM_TOOLS = {"aapt2": "aapt", "aapt": "aapt", "zipalign": "zipalign", "apksigner": "apksigner"}
JDK_TOOLS = ("javac", "java", "keytool")
FOREIGN_SUITE = "bullseye"
# file in the unpacked .debs -> the bullseye package that provides it
FOREIGN_FILES = {
    "usr/share/java/com.android.android-23.jar": "libandroid-23-java",
    "usr/share/java/com.android.dx.jar": "dalvik-exchange",
}


@dataclass(frozen=True)
class Toolchain:
    """Paths of everything the hand build runs."""

    aapt2: str
    aapt: str
    zipalign: str
    apksigner: str
    javac: str
    java: str
    keytool: str
    android_jar: Path
    dx_jar: Path
    cache: Path


def android_cache() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/phone-pipeline/android`, created on first use."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "phone-pipeline" / "android"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_toolchain() -> Toolchain:
    """Every tool of the hand build, installing the missing bookworm packages and fetching the bullseye ones."""
    missing_jdk = [t for t in JDK_TOOLS if shutil.which(t) is None]
    if missing_jdk:
        raise ToolError(f"apk: {', '.join(missing_jdk)} not found: install a JDK (17 works), e.g. openjdk-17-jdk")
    _install_bookworm_packages(sorted({pkg for tool, pkg in BOOKWORM_TOOLS.items() if shutil.which(tool) is None}))
    cache = android_cache()
    root = _foreign_root(cache)
    tools = {tool: shutil.which(tool) for tool in (*BOOKWORM_TOOLS, *JDK_TOOLS)}
    return Toolchain(
        **tools,  # type: ignore[arg-type]
        android_jar=root / "usr/share/java/com.android.android-23.jar",
        dx_jar=root / "usr/share/java/com.android.dx.jar",
        cache=cache,
    )


def _install_bookworm_packages(packages: list[str]) -> None:
    if not packages:
        return
    if os.geteuid() != 0:
        raise ToolError(f"apk: missing Debian packages {' '.join(packages)}: run `make setup` (needs root)")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        what=f"apk: apt-get install {' '.join(packages)}", env=env, timeout=900)
    still = [t for t, p in BOOKWORM_TOOLS.items() if p in packages and shutil.which(t) is None]
    if still:
        raise ToolError(f"apk: {', '.join(still)} still missing after installing {' '.join(packages)}")


def _foreign_root(cache: Path) -> Path:
    """The unpacked bullseye packages; downloaded and unpacked only when a needed file is missing."""
    root = cache / f"{FOREIGN_SUITE}-root"
    if all((root / f).is_file() for f in FOREIGN_FILES):
        return root
    packages = sorted(set(FOREIGN_FILES.values()))
    workdir = cache / f"{FOREIGN_SUITE}-apt"
    for old in (workdir / "debs").glob("*.deb"):
        old.unlink()
    debs = download_debs(packages, suite=FOREIGN_SUITE, arch="amd64", workdir=workdir)
    staging = cache / f"{FOREIGN_SUITE}-root.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for deb in debs:
        run(["dpkg-deb", "-x", str(deb), str(staging)], what=f"apk: dpkg-deb -x {deb.name}", timeout=120)
    missing = [f for f in FOREIGN_FILES if not (staging / f).is_file()]
    if missing:
        raise ToolError(f"apk: {', '.join(missing)} not in the {FOREIGN_SUITE} packages {' '.join(packages)}")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return root
