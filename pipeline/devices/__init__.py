"""Devices: where artifacts run. `device_for` turns a target file's `[device]` table into a Device."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import ToolError, UserError
from pipeline.devices.adb import DEFAULT_WORKDIR, AdbDevice
from pipeline.devices.base import Capabilities, CommandResult, Device
from pipeline.devices.cache_dir import devices_cache
from pipeline.devices.host import HostDevice

__all__ = ["AdbDevice", "Capabilities", "CommandResult", "Device", "HostDevice", "check_reachable", "device_for"]


def device_for(target_device_table: dict, serial: str | None = None) -> Device:
    """The Device a target's `[device]` table describes; `serial` (from --serial) overrides the table's."""
    kind = target_device_table.get("kind")
    name = target_device_table.get("name")
    if kind == "host":
        workdir = target_device_table.get("workdir") or str(devices_cache() / "host-workdir")
        return HostDevice(Path(workdir), name=name or "host")
    if kind == "adb":
        chosen = serial or target_device_table.get("serial")
        if not chosen:
            raise UserError("device: no adb serial: set [device] serial in the target or pass --serial")
        return AdbDevice(chosen, workdir=target_device_table.get("workdir", DEFAULT_WORKDIR), name=name or chosen)
    raise UserError(f"device: unknown kind {kind!r}; expected 'host' or 'adb'")


def check_reachable(target_name: str, target_device_table: dict) -> None:
    """For an adb target: one trivial command on the device, so that a missing phone fails before hours of work."""
    if target_device_table.get("kind") != "adb":
        return
    device = device_for({**target_device_table, "name": target_name})
    try:
        device.run(["true"], timeout=30, step="reachability check before any work")
    except ToolError as exc:
        raise ToolError(f"{exc}; connect it (`adb devices` must list it as 'device'), pass --serial, or build and "
                        f"validate on this machine first with --target host") from None
