"""Create and refresh the project's virtual environment; stdlib only, run with the system Python.

`python3 -m pipeline.bootstrap` is what `make setup` calls. It is idempotent: when the lock file, the system package
list and the Python version are unchanged since the last successful run it returns in well under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
SYSTEM_PACKAGES = Path(__file__).resolve().parent / "system_packages.toml"
STAMP = VENV / ".setup-stamp"


def _say(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def _run(cmd: list[str], **kw) -> None:
    _say(" ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def system_packages() -> dict[str, str]:
    """Debian packages the project needs, name -> reason."""
    with SYSTEM_PACKAGES.open("rb") as f:
        return dict(tomllib.load(f)["packages"])


def missing_system_packages(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in out.stdout:
            missing.append(name)
    return missing


def ensure_system_packages() -> None:
    names = list(system_packages())
    missing = missing_system_packages(names)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"[setup] missing Debian packages {missing} and no apt-get here: install them, then rerun make setup")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run([*sudo, "apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    _run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def _stamp_value() -> str:
    h = hashlib.sha256()
    for path in (LOCK, SYSTEM_PACKAGES, ROOT / "pyproject.toml"):
        h.update(path.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def installer_pins() -> list[str]:
    """The lock's pins of pip, setuptools and wheel."""
    pins = [line.strip() for line in LOCK.read_text().splitlines()
            if line.split("==")[0].strip().lower() in ("pip", "setuptools", "wheel")]
    if len(pins) != 3:
        sys.exit(f"[setup] {LOCK} must pin pip, setuptools and wheel (regenerate it with `make lock`)")
    return pins


def ensure_venv() -> None:
    py = VENV / "bin" / "python"
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    # The installers first (a new venv has Python's bundled pip and setuptools, which cannot build the editable
    # install below without `wheel`), then the rest. --no-deps: the lock is the whole resolved set; onnx2tf and
    # tf-keras declare pins that conflict with it.
    _run([str(py), "-m", "pip", "install", "-q", *installer_pins()])
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-r", str(LOCK)])
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)])


def write_lock() -> None:
    """Regenerate requirements.lock from what .venv holds now (the project itself left out)."""
    py = VENV / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "freeze", "--all", "--exclude-editable"], check=True,
                         capture_output=True, text=True).stdout
    pins = [line for line in out.splitlines() if line and not line.startswith(("-e", "#"))]
    header = LOCK.read_text().splitlines()[:2] if LOCK.exists() else []
    LOCK.write_text("\n".join([*header, *pins]) + "\n")
    _say(f"wrote {LOCK} ({len(pins)} packages)")


def main() -> int:
    if "--lock" in sys.argv[1:]:
        write_lock()
        return 0
    want = _stamp_value()
    if STAMP.exists() and STAMP.read_text() == want and not missing_system_packages(list(system_packages())):
        _say("environment up to date")
        return 0
    ensure_system_packages()
    ensure_venv()
    STAMP.write_text(want)
    _say("environment ready: .venv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
