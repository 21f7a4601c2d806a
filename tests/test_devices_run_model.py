"""run_model on the test devices with real tiny artifacts, checked against the host's own runtimes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import ToolError
from pipeline.devices.device_abi import arch_of, elf_arch
from pipeline.devices.et_runner_build import build_et_runner
from pipeline.devices.remote_cache import RemoteCache, Upload
from pipeline.devices.run_model import run_model
from pipeline.devices.testbed import bring_up as testbed

pytestmark = pytest.mark.devices
SAMPLES = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A small conv net lowered to XNNPACK, and its outputs from the host's ExecuTorch runtime."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)
    ).eval()
    exported = torch.export.export(model, (torch.from_numpy(SAMPLES[:1]),))
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path = tmp_path_factory.mktemp("pte") / "tiny.pte"
    path.write_bytes(program.buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    reference = np.concatenate([method.execute([torch.from_numpy(x[None])])[0].numpy() for x in SAMPLES])
    return path, reference


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small Keras conv net converted to .tflite (NHWC input), and its outputs from the host's LiteRT."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    tf.random.set_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 3), batch_size=1),
            tf.keras.layers.Conv2D(4, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(5),
        ]
    )
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    inputs = np.ascontiguousarray(SAMPLES.transpose(0, 2, 3, 1))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    outputs = []
    for x in inputs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return path, inputs, np.concatenate(outputs)


def assert_close_fp32(outputs: list[np.ndarray], expected: np.ndarray) -> None:
    """A one-output model's outputs: one array, equal to the host's within float32 rounding."""
    assert len(outputs) == 1
    actual = outputs[0]
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()


def test_emulated_arm64_runs_pte_like_host_executorch(emulated, tiny_pte):
    path, reference = tiny_pte
    result = run_model(emulated, path, "pte", SAMPLES, threads=2, warmup=1, runs=3, core_mask="1", timeout=300)
    assert_close_fp32(result.outputs, reference)
    assert len(result.latencies_ms) == 3 and all(t > 0 for t in result.latencies_ms)
    info = result.device_info
    assert info["arch"] == "aarch64" and info["runtime"] == "executorch" and info["core_mask_applied"]


def test_emulated_arm64_runs_tflite_like_host_litert(emulated, tiny_tflite):
    path, inputs, reference = tiny_tflite
    result = run_model(emulated, path, "tflite", inputs, threads=1, warmup=1, runs=2, core_mask=None, timeout=300)
    assert_close_fp32(result.outputs, reference)
    assert len(result.latencies_ms) == 2 and result.device_info["runtime"] == "litert"


def test_loopback_runs_pte_with_the_amd64_runner(loopback, tiny_pte):
    path, reference = tiny_pte
    result = run_model(loopback, path, "pte", SAMPLES, threads=1, warmup=0, runs=2, core_mask=None, timeout=120)
    assert_close_fp32(result.outputs, reference)
    assert result.device_info["arch"] == "x86_64"


def test_rerun_pushes_nothing_but_the_inputs(loopback, tiny_pte):
    path, _ = tiny_pte
    run_model(loopback, path, "pte", SAMPLES, threads=1, warmup=0, runs=1, timeout=120)
    again = run_model(loopback, path, "pte", SAMPLES, threads=1, warmup=0, runs=1, timeout=120)
    assert again.device_info["pushed"] == []
    leftovers = loopback.check(f"ls {loopback.workdir}", timeout=30, step="list").split()
    assert not [name for name in leftovers if name.startswith("run-")]


def test_hanging_runner_is_one_line_naming_device_and_step(emulated, tiny_tflite):
    path, inputs, _ = tiny_tflite
    # Python alone needs seconds to start under emulation: half a second stands for a runner that hangs.
    with pytest.raises(ToolError) as err:
        run_model(emulated, path, "tflite", inputs, threads=1, warmup=0, runs=1, timeout=0.5)
    message = str(err.value)
    assert "emulated-arm64" in message and "run tflite runner" in message and "timed out" in message
    assert "\n" not in message


def test_lack_of_space_is_reported_before_pushing(loopback, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    with pytest.raises(ToolError, match=r"adb-loopback: push: needs 2 MB .* 0 MB free"):
        RemoteCache(loopback).ensure([Upload(big, "big.bin")], free_bytes=1000)
    assert Upload(big, "big.bin").entry not in loopback.check(["ls", RemoteCache(loopback).root], timeout=30, step="ls")


def test_runner_for_another_abi_is_refused_before_pushing(emulated, tiny_pte):
    with pytest.raises(ToolError) as err:
        run_model(
            emulated, tiny_pte[0], "pte", SAMPLES, threads=1, warmup=0, runs=1, et_runner=build_et_runner("x86_64")
        )
    message = str(err.value)
    assert "emulated-arm64: check runner" in message and "built for x86_64, device is aarch64" in message


def test_runners_are_built_per_architecture_and_unknown_abis_are_refused():
    assert elf_arch(build_et_runner("x86_64") / "et_runner") == "x86_64"
    assert elf_arch(build_et_runner("aarch64") / "et_runner") == "aarch64"
    assert arch_of("arm64-v8a") == "aarch64"
    with pytest.raises(ToolError, match="not supported"):
        arch_of("mips")


def test_unknown_format_is_one_line(loopback, tiny_pte):
    with pytest.raises(ToolError, match="unknown artifact format"):
        run_model(loopback, tiny_pte[0], "onnx", SAMPLES, threads=1, warmup=0, runs=1)


def test_lost_device_is_one_line_naming_device_and_step(loopback, tiny_pte):
    testbed.down("adb-loopback")
    try:
        with pytest.raises(ToolError) as err:
            run_model(loopback, tiny_pte[0], "pte", SAMPLES, threads=1, warmup=0, runs=1, timeout=60)
        message = str(err.value)
        assert message.startswith("device adb-loopback: probe: not reachable through adb") and "\n" not in message
    finally:
        testbed.up("adb-loopback")
