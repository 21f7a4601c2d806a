"""CPU architecture names as devices, compilers and wheels spell them; the architecture of an ELF file."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import ToolError

# `uname -m` (and Android's ro.product.cpu.abi) -> the architecture name used for runner builds and wheels.
_ARCH_OF = {
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "arm64-v8a": "aarch64",
    "x86_64": "x86_64",
    "amd64": "x86_64",
}
# ELF e_machine values of the architectures we build runners for.
_ELF_MACHINE = {62: "x86_64", 183: "aarch64"}


def arch_of(abi: str) -> str:
    """`aarch64` or `x86_64` for a device ABI string; ToolError for one the project has no runner for."""
    arch = _ARCH_OF.get(abi.strip().lower())
    if arch is None:
        raise ToolError(f"device ABI {abi!r} is not supported: runners exist for {sorted(set(_ARCH_OF.values()))}")
    return arch


def elf_arch(path: Path) -> str:
    """The architecture an ELF executable or library was built for ('unknown' when not recognised)."""
    head = Path(path).read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return "not-elf"
    return _ELF_MACHINE.get(int.from_bytes(head[18:20], "little"), "unknown")
