"""The adb device against real adbd test devices (`python -m pipeline.devices.testbed up`): no mocks."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from pipeline.core.errors import ToolError
from pipeline.devices import AdbDevice, device_for
from pipeline.devices.testbed import bring_up as testbed

pytestmark = pytest.mark.devices


def test_push_run_pull_roundtrip_keeps_every_byte(loopback, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "in.bin").write_bytes(payload)
    remote = f"{loopback.workdir}/roundtrip/in.bin"
    loopback.push(tmp_path / "in.bin", remote)
    out = loopback.check(["sha256sum", remote], timeout=30, step="hash")
    assert out.split()[0] == hashlib.sha256(payload).hexdigest()
    loopback.check(["cp", remote, remote + ".copy"], timeout=30, step="copy")
    loopback.pull(remote + ".copy", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload


def test_exit_code_and_separate_streams_come_back(loopback):
    assert loopback.run("echo out; echo err >&2; exit 3", timeout=30) == (3, "out\n", "err\n")
    assert loopback.run(["true"], timeout=30).exit_code == 0


def test_argv_reaches_the_device_unchanged_by_its_shell(loopback):
    arg = "two words; $HOME 'quoted' \"double\""
    assert loopback.check(["printf", "%s", arg], timeout=30, step="echo") == arg


def test_hanging_command_times_out_and_is_killed_on_the_device(loopback):
    with pytest.raises(ToolError) as err:
        loopback.run(["sleep", "987"], timeout=2, step="hang")
    message = str(err.value)
    assert "adb-loopback" in message and "hang" in message and "timed out" in message
    assert "\n" not in message
    # The chroot shares the host's /proc: look for the sleep there, through the device's own shell.
    leftover = loopback.run(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 987 '",
        timeout=30,
    )
    assert leftover.stdout.strip() == "0"


def test_probe_reads_capabilities_from_the_device(loopback, emulated):
    caps = loopback.probe()
    assert caps.abi == "x86_64"
    assert caps.cpu_count == os.cpu_count()
    assert caps.free_bytes and caps.free_bytes > 10 * 1024 * 1024
    assert caps.has("taskset") and not caps.has("getprop") and not caps.has("am")
    arm = emulated.probe()
    assert arm.abi == "aarch64" and arm.has("python3")


def _wait_for_state(device: AdbDevice, wanted: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while (state := device.state()) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return state


def test_device_is_usable_again_after_adbd_restarts(loopback):
    # While adbd is down adb lists the serial as offline. How soon adb reconnects after adbd is back depends on
    # adb's own retry timer, so the test waits for the offline state with adbd stopped, not after the restart.
    testbed.stop_adbd("adb-loopback")
    try:
        assert _wait_for_state(loopback, "offline", 15) == "offline"
    finally:
        testbed.start_adbd("adb-loopback")
    assert loopback.run(["echo", "back"], timeout=60).stdout == "back\n"
    assert loopback.state() == "device"
    testbed.restart_adbd("adb-loopback")
    loopback.reconnect()
    assert loopback.state() == "device"


@pytest.mark.parametrize("serial", ["127.0.0.1:6599", "emulator-5584"])
def test_missing_device_gives_one_line_naming_it(serial, tmp_path):
    (tmp_path / "f").write_text("x")
    device = device_for({"kind": "adb"}, serial)
    with pytest.raises(ToolError) as err:
        device.push(tmp_path / "f", "/data/local/tmp/f")
    message = str(err.value)
    assert serial in message and "push" in message and "\n" not in message


def test_device_for_needs_a_serial_for_adb():
    with pytest.raises(Exception, match="serial"):
        device_for({"kind": "adb"}, None)


def test_forgotten_connection_is_restored_by_itself(loopback):
    loopback.disconnect()
    assert loopback.state() == "absent"
    assert loopback.run(["echo", "again"], timeout=60).stdout == "again\n"
