"""The pipeline's on_device stage through real adb to both test devices, with the reduced recipe.

The device targets reuse the host run's cached conversions (same recipe, same [artifacts] build, same build folder),
so only the host benchmark and the on-device work run here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, cli

from pipeline.devices.testbed import bring_up as testbed

pytestmark = pytest.mark.devices
FP32_RELATIVE = 1e-5  # on-device fp32 outputs against the host's outputs of the same file, relative to max |logit|


def device_target(folder: Path, base: str, name: str, host_target: Path, samples: int) -> Path:
    """A test device's target file with a small validation slice, few timed runs and the host test's artifacts."""
    text = (ROOT / "targets" / f"{base}.toml").read_text()
    data = tomllib.loads(text)
    lines, skip = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skip = line.strip() in ("[validation]", "[benchmark]")
        if not skip:
            lines.append(line)
    artifacts = tomllib.loads(host_target.read_text())["artifacts"]["build"]
    lines = [f'name = "{name}"' if line.startswith("name = ") else line for line in lines]
    assert data["device"]["kind"] == "adb"
    lines += ["[validation]", f"samples = {samples}", "[benchmark]", "threads = 1", "warmup = 1", "runs = 3",
              "cooldown_s = 0.0", "[artifacts]", f"build = {json.dumps(artifacts)}"]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(recipe: Path, target: Path, build: Path, *extra: str) -> list[str]:
    return ["run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build), "--no-gates",
            *extra]


def report_of(build: Path, recipe_name: str, target_name: str) -> dict:
    return json.loads((build / "runs" / f"{recipe_name}__{target_name}" / "report.json").read_text())


def stage_data(build: Path, recipe_name: str, target_name: str, stage: str) -> dict:
    manifest = json.loads((build / "runs" / f"{recipe_name}__{target_name}" / "manifest.json").read_text())
    return next(rec["data"] for rec in manifest["stages"] if rec["name"] == stage)


def check_rows_equal_host(rows: list[dict]) -> None:
    """fp32 within 1e-5 relative and the same top-1; int8 within one output quantization step."""
    for r in rows:
        if r["precision"] == "fp32":
            assert r["host_agreement"] == 1.0, r
            assert r["max_rel_diff"] <= FP32_RELATIVE, r
        elif r["precision"] == "int8" and r["max_diff_steps"] is not None:
            assert r["max_diff_steps"] <= 1.0 + 1e-6, r  # int8 outputs (TFLite): in their quantization steps
        elif r["precision"] == "int8":
            # float outputs of an int8 program (.pte): one step of an 8-bit range spanning +-max |logit|
            assert r["max_rel_diff"] <= 2 / 255, r
        assert r["latency_ms"]["p50"] > 0 and r["samples"] > 0


@pytest.fixture(scope="module")
def devices_up():
    testbed.up("adb-loopback")
    testbed.up("emulated-arm64")


@pytest.mark.slow  # about 5 min: every artifact under qemu; the loopback run and tests/test_devices_run_model stay
def test_emulated_phone_runs_litert_and_executorch_like_the_host_and_resumes_after_a_disconnect(
        e2e, tiny_recipe, test_target, workspace, devices_up):
    build = e2e["build"]
    target = device_target(workspace, "emulated-arm64", "test-emulated", test_target, samples=16)
    parts = build / "cache" / "on_device_parts"
    before = set(parts.glob("*.json")) if parts.exists() else set()
    # The device disappears (adbd stopped, connection gone) once the first artifact is measured and kept.
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *run_args(tiny_recipe, target, build)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        if parts.exists() and set(parts.glob("*.json")) - before:
            testbed.down("emulated-arm64")
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=900)
    try:
        assert proc.returncode == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: stage on_device") and "test-emulated" in last and "127.0.0.1:6522" in last
        assert "1 of " in last and "rerun to continue" in last
    finally:
        testbed.up("emulated-arm64")

    again = cli(*run_args(tiny_recipe, target, build))
    assert again.returncode == 0, again.stderr[-3000:]
    data = stage_data(build, "tiny", "test-emulated", "on_device")
    assert len(data["resumed"]) == 1  # measured before the disconnect, not measured again
    rows = report_of(build, "tiny", "test-emulated")["on_device"]
    assert {r["runtime"] for r in rows} == {"litert", "executorch"}
    assert all(r["emulated"] and r["device"] == "test-emulated" and r["serial"] == "127.0.0.1:6522" for r in rows)
    assert all(r["abi"] == "aarch64" and r["samples"] == 16 for r in rows)
    check_rows_equal_host(rows)
    md = (build / "runs" / "tiny__test-emulated" / "report.md").read_text()
    assert "emulated latency (not comparable with phones)" in md
    host_rows = report_of(build, "tiny", "test-emulated")["artifacts"]
    assert {r["device"] for r in host_rows} == {"host"}  # host measurements stay labelled as the host's

    # A release for the device ranks by the device's own (emulated) latency among what passed on the device.
    out = workspace / "release-emulated"
    rel = cli("release", "--recipe", str(tiny_recipe), "--target", str(target), "--build-dir", str(build),
              "--out", str(out))
    assert rel.returncode == 0, rel.stderr[-3000:]
    meta = json.loads(next(out.glob("*/metadata.json")).read_text())
    sel = meta["selection"]
    assert "EMULATED" in sel["measured_on"] and "127.0.0.1:6522" in sel["measured_on"]
    device_p50 = {r["name"]: r["latency_ms"]["p50"] for r in rows}
    for fmt in ("tflite", "pte"):
        pool = [c for c in sel["candidates"] if c["format"] == fmt and c["gate"] == "pass"]
        assert pool and all(c["latency_source"] == "device" and c["p50_ms"] == device_p50[c["name"]] for c in pool)
        best = min(pool, key=lambda c: (c["p50_ms"], c["size_bytes"], c["name"]))
        assert [a["name"] for a in meta["artifacts"] if a["format"] == fmt] == [best["name"]]


def test_loopback_runs_executorch_artifacts_like_the_host(e2e, tiny_recipe, test_target, workspace, devices_up):
    build = e2e["build"]
    target = device_target(workspace, "adb-loopback", "test-loopback", test_target, samples=64)
    proc = cli(*run_args(tiny_recipe, target, build))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = report_of(build, "tiny", "test-loopback")
    rows = rep["on_device"]
    assert rows and {r["runtime"] for r in rows} == {"executorch"}
    assert all(not r["emulated"] and r["abi"] == "x86_64" for r in rows)
    check_rows_equal_host(rows)
    left_out = stage_data(build, "tiny", "test-loopback", "on_device")["left_out"]
    assert left_out and all("litert" in why for why in left_out.values())  # the target lists executorch only


def test_unreachable_device_fails_before_any_stage_does_work(e2e, tiny_recipe, test_target, workspace):
    build = e2e["build"]
    target = device_target(workspace, "adb-loopback", "test-loopback", test_target, samples=64)
    proc = cli(*run_args(tiny_recipe, target, build, "--serial", "127.0.0.1:6599", "--from", "evaluate"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "127.0.0.1:6599" in last and "before any work" in last and "--target host" in last
    assert "[evaluate] running" not in proc.stderr and "[to_onnx] cached" in proc.stderr


def test_host_target_skips_on_device(e2e):
    data = next(rec["data"] for rec in e2e["manifest"]["stages"] if rec["name"] == "on_device")
    assert data == {"skipped": "host target"} and e2e["report"]["on_device"] == []
