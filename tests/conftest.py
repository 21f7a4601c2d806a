"""Shared fixtures: a reduced recipe and target, and one end-to-end run shared by the tests that read its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = ROOT / "pipeline" / "recipes" / "fashion-mnist-mobilenetv2.toml"

os.environ.setdefault("PIPELINE_NO_PROGRESS", "1")
os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_recipe(folder: Path, name: str = "tiny", **overrides: str) -> Path:
    """The default recipe, reduced to seconds of work: 6,000 training images, 2 epochs, 400 test images.

    `overrides` maps 'table.key' to a TOML value text, e.g. {'data.eval_samples': '200'}.
    """
    text = DEFAULT_RECIPE.read_text().replace('name = "fashion-mnist-mobilenetv2"', f'name = "{name}"')
    values = {"train.epochs": "2", "train.max_train_samples": "6000", "data.eval_samples": "400",
              "data.calibration_samples": "64", "prune.max_accuracy_drop": "10.0",
              "quantize.max_accuracy_drop": "10.0", **overrides}
    lines, table = [], ""
    pending = dict(values)
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            lines += _leftovers(pending, table)
            table = stripped.strip("[]")
        key = stripped.split("=")[0].strip() if "=" in stripped and not stripped.startswith("#") else None
        full = f"{table}.{key}" if key else None
        if full in pending:
            line = f"{key} = {pending.pop(full)}"
        lines.append(line)
    lines += _leftovers(pending, table)
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _leftovers(pending: dict, table: str) -> list[str]:
    out = [f"{k.split('.')[-1]} = {v}" for k, v in list(pending.items()) if k.rsplit(".", 1)[0] == table]
    for k in [k for k in pending if k.rsplit(".", 1)[0] == table]:
        pending.pop(k)
    return out


def write_target(folder: Path, runs: int = 20, build: str | None = None) -> Path:
    artifacts = build or '["onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8", "pte-fp32", "pte-int8"]'
    path = folder / "test-host.toml"
    path.write_text(f"""[target]
name = "test-host"
description = "host, few benchmark runs (tests)"
[device]
kind = "host"
[compute]
threads = 1
[artifacts]
build = {artifacts}
[benchmark]
warmup = 3
runs = {runs}
threads = 1
# rounds: enough to exercise the interval and the stopping rule, few enough for `make test`
min_rounds = 2
max_rounds = 2
max_seconds = 60
ci_rel_width = 0.25
""")
    return path


def cli(*args: str, cwd: Path = ROOT, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process, as a user would (`timeout` guards against a hang, not a slow machine)."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="session")
def tiny_recipe(workspace: Path) -> Path:
    return write_recipe(workspace)


@pytest.fixture(scope="session")
def test_target(workspace: Path) -> Path:
    return write_target(workspace)


@pytest.fixture(scope="session")
def e2e(workspace: Path, tiny_recipe: Path, test_target: Path) -> dict:
    """One whole run of the reduced recipe through every stage; returns paths and the parsed outputs."""
    build = workspace / "build"
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(build))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = build / "runs" / "tiny__test-host"
    return {
        "proc": proc,
        "build": build,
        "run_dir": run_dir,
        "manifest": json.loads((run_dir / "manifest.json").read_text()),
        "report": json.loads((run_dir / "report.json").read_text()),
    }


def evaluated_outputs(run_dir: Path, artifact: str) -> np.ndarray:
    """What `artifact` output on the evaluation set in the run of `run_dir` (the evaluate stage's cached arrays)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    key = next(s["key"] for s in manifest["stages"] if s["name"] == "evaluate")
    return np.load(run_dir.parent.parent / "cache" / "evaluate" / key / f"logits_{artifact}.npy")


def one_line_refusal(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a command refused as a user mistake (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def loopback():
    """The adb loopback test device (a real adbd on this machine), brought up if it is down."""
    from pipeline.devices.testbed import bring_up as testbed

    return testbed.up("adb-loopback")


@pytest.fixture(scope="module")
def emulated():
    """The emulated arm64 phone (qemu user mode behind a real adbd), brought up if it is down."""
    from pipeline.devices.testbed import bring_up as testbed

    return testbed.up("emulated-arm64")


def android_refusal(metadata: Path, tmp_path: Path) -> str:
    """The first line the Android app's own bundle reader (its plain-Java core on the host JVM, through
    PreprocessCli) prints for `metadata`; it must fail."""
    from pipeline.android import host_jvm

    classes = host_jvm.compile_core(tmp_path / "classes")
    cp = ":".join([str(classes), *map(str, host_jvm.junit_classpath())])
    proc = subprocess.run(["java", "-cp", cp, host_jvm.PREPROCESS_CLI, str(metadata), "any", "none.png",
                           str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.splitlines()[0]


def conv_relu6_programs(folder: Path, shape: tuple[int, ...], stride: int = 1, calibration: int = 8) -> dict[str, Path]:
    """A real fp32 and int8 (PTQ) XNNPACK .pte of one small conv -> ReLU6 -> depthwise -> 1x1 -> linear network,
    made by the pipeline's own functions: {"fp32": path, "int8": path}."""
    import torch
    import torch.nn as nn

    from pipeline.compression.quantization import ptq
    from pipeline.converters.executorch_lowering import lower

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(shape[1], 8, 3, stride=stride, padding=1), nn.ReLU6(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(), nn.Conv2d(8, 16, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    calib = torch.randn(calibration, *shape[1:])
    out = {}
    for precision, m in (("fp32", model), ("int8", ptq(model, calib))):
        out[precision] = folder / f"{precision}.pte"
        out[precision].write_bytes(lower(m, calib[:1])[0])
    return out
