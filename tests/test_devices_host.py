"""The host device and the targets' `[device]` tables: no test devices needed."""

from __future__ import annotations

import os

import pytest

from pipeline.core.errors import ToolError, UserError
from pipeline.devices import AdbDevice, HostDevice, device_for
from pipeline.recipe.targets import load_target


def test_host_device_pushes_runs_and_pulls(tmp_path):
    device = device_for({"kind": "host", "workdir": str(tmp_path / "work")})
    (tmp_path / "a.txt").write_text("hello")
    device.push(tmp_path / "a.txt", f"{device.workdir}/sub/a.txt")
    assert device.run(f"cat {device.workdir}/sub/a.txt; exit 4", timeout=10) == (4, "hello", "")
    device.pull(f"{device.workdir}/sub/a.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "hello"


def test_host_probe_reads_this_machine(tmp_path):
    caps = HostDevice(tmp_path).probe()
    assert caps.abi == os.uname().machine and caps.cpu_count == os.cpu_count()
    assert caps.free_bytes and caps.free_bytes > 0


def test_host_timeout_is_one_line_naming_device_and_step(tmp_path):
    with pytest.raises(ToolError, match=r"device host: wait: timed out"):
        HostDevice(tmp_path).run(["sleep", "5"], timeout=0.5, step="wait")


@pytest.mark.parametrize("name", ["adb-loopback", "emulated-arm64", "pixel-8", "galaxy-s24"])
def test_every_device_target_gives_a_device(name):
    table = load_target(name).section("device")
    device = device_for(table, table["serial"] or "SERIAL123")
    assert isinstance(device, AdbDevice) and device.serial == (table["serial"] or "SERIAL123")


def test_unknown_device_kind_is_a_user_error():
    with pytest.raises(UserError, match="unknown kind"):
        device_for({"kind": "ssh"}, None)
