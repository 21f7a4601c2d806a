"""Download .debs of another Debian suite (trixie) with a private apt configuration.

The system's own apt sources and state stay untouched: apt reads only the config written here (in the cache).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.proc import run
from pipeline.devices.testbed.debian_mirror import debian_mirror

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def download_debs(names: list[str], *, suite: str, arch: str, workdir: Path) -> list[Path]:
    """Fetch the named packages (not their dependencies) of `suite` for `arch` into `workdir/debs`."""
    config = _write_apt_config(workdir, suite=suite, arch=arch)
    env = {"APT_CONFIG": str(config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    run(["apt-get", "update", "-q"], what=f"devices: apt-get update ({suite} {arch})", env=env, timeout=600)
    debs = workdir / "debs"
    debs.mkdir(exist_ok=True)
    run(
        ["apt-get", "download", "-q", *[f"{n}:{arch}" for n in names]],
        what=f"devices: apt-get download {' '.join(names)} ({suite})",
        env=env,
        cwd=debs,
        timeout=600,
    )
    return sorted(debs.glob("*.deb"))


def _write_apt_config(workdir: Path, *, suite: str, arch: str) -> Path:
    for sub in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    sources = workdir / "etc/sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {debian_mirror()} {suite} main\n")
    config = workdir / "etc/apt.conf"
    config.write_text(
        "\n".join(
            [
                f'Dir::State "{workdir / "state"}";',
                f'Dir::State::status "{workdir / "state/status"}";',
                f'Dir::Cache "{workdir / "cache"}";',
                f'Dir::Etc::sourcelist "{sources}";',
                'Dir::Etc::sourceparts "-";',
                f'Dir::Etc::parts "{workdir / "etc/apt.conf.d"}";',
                f'Dir::Etc::preferencesparts "{workdir / "etc/preferences.d"}";',
                f'APT::Architecture "{arch}";',
                'APT::Architectures { "' + arch + '"; };',
                'Acquire::Languages "none";',
                "",
            ]
        )
    )
    (workdir / "state/status").touch()
    return config
