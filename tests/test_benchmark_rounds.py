"""The benchmark times the runtime alone, compares in rounds with bootstrap intervals and watches the machine's load."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.artifacts.artifact import Artifact
from pipeline.core.errors import ConfigError
from pipeline.measure import bench_worker, host_load, rounds
from pipeline.measure.stats import lower_median, median_round, speedup_interval
from pipeline.runtimes import Session
from pipeline.stages import benchmark

INT8_NHWC = {"name": "tflite-int8", "path": "m.tflite", "format": "tflite", "precision": "int8", "layout": "NHWC",
             "input_shape": (1, 4, 4, 2), "input_dtype": "int8", "input_quantization": {"scale": 0.5, "zero_point": 3},
             "output_quantization": {"scale": 0.25, "zero_point": -1}}


class Echo(Session):
    """A session whose model returns its prepared input: shows what prepare and to_logits do."""

    runtime = "echo"

    def __init__(self, artifact: Artifact, threads: int = 1):
        self.artifact = artifact

    def invoke(self, prepared: list[np.ndarray]) -> list[np.ndarray]:
        return prepared


def test_prepare_gives_the_artifact_layout_and_type_and_run_is_the_three_steps():
    s = Echo(Artifact(**INT8_NHWC))
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4) / 4
    [prepared] = s.prepare(x)
    assert prepared.dtype == np.int8 and prepared.shape == (1, 4, 4, 2) and prepared.flags.c_contiguous
    assert prepared[0, 1, 2, 1] == np.rint(x[0, 1, 1, 2] / 0.5) + 3
    np.testing.assert_array_equal(s.run(x), s.to_logits(s.invoke([prepared])))
    np.testing.assert_array_equal(s.run_all([x])[0], s.run(x))
    assert s.to_logits([np.array([3], dtype=np.int8)]).tolist() == [1.0]  # (3 - (-1)) * 0.25


class SlowPrepare(Echo):
    """Preparation costs 2 ms and the model nothing: a worker that times prepare inside the loop would say >= 2 ms."""

    prepared_calls = 0

    def prepare(self, x: np.ndarray) -> np.ndarray:
        SlowPrepare.prepared_calls += 1
        time.sleep(0.002)
        return x


def test_worker_times_invoke_alone_and_preparation_apart(tmp_path, monkeypatch):
    import pipeline.runtimes

    monkeypatch.setattr(pipeline.runtimes, "session_class", lambda fmt: SlowPrepare)
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 4, 4), np.float32))
    art = {**INT8_NHWC, "input_shape": [1, 4, 4, 2]}
    res = bench_worker.measure({"artifact": art, "input": str(tmp_path / "x.npy"), "threads": 1, "warmup": 2,
                                "runs": 10})
    assert res["latency_ms"]["runs"] == 10 and res["latency_ms"]["p50"] < 1.0
    assert res["prepare_ms"]["runs"] == 10 and res["prepare_ms"]["p50"] >= 2.0
    assert SlowPrepare.prepared_calls == 1 + 1 + 10  # load run, once before the loops, the prepare timing


def test_lower_median_is_a_measured_value_and_its_round_is_found():
    assert lower_median([3.0, 1.0, 2.0, 5.0]) == 2.0 and lower_median([4.0, 1.0, 2.0]) == 2.0
    assert median_round([3.0, 1.0, 2.0, 5.0]) == 2 and median_round([0.5]) == 0


def test_speedup_interval_is_seeded_and_brackets_the_ratio():
    rng = np.random.default_rng(1)
    base = 2.0 * (1 + 0.05 * rng.standard_normal(9))
    fast = 1.0 * (1 + 0.05 * rng.standard_normal(9))
    a, b = speedup_interval(base, fast), speedup_interval(base, fast)
    assert a == b and a["ci_low"] <= a["ratio"] <= a["ci_high"] and 1.7 < a["ratio"] < 2.3
    assert a["confidence"] == 0.95 and a["rel_width"] == pytest.approx((a["ci_high"] - a["ci_low"]) / a["ratio"])


def test_shared_slow_rounds_cancel_in_the_paired_interval():
    load = np.array([1.0, 1.8, 1.0, 1.3, 1.0])  # a busy machine slows both artifacts of a round alike
    paired = speedup_interval(2.0 * load, 1.0 * load)
    assert paired["ratio"] == 2.0 and paired["rel_width"] < 0.5
    noisy = speedup_interval(2.0 * load, 1.0 * load[::-1])
    assert noisy["rel_width"] > paired["rel_width"]


def test_speedup_interval_refuses_unpaired_rounds():
    with pytest.raises(ValueError, match="same non-zero number of rounds"):
        speedup_interval([1.0, 2.0], [1.0])


def _art(name: str, fmt: str, precision: str = "fp32", pruned: bool = False, quantization: str = "none") -> Artifact:
    return Artifact(name=name, path="", format=fmt, precision=precision, layout="NCHW", input_shape=(1, 1, 4, 4),
                    pruned=pruned, quantization=quantization)


def test_each_artifact_is_compared_with_the_fp32_artifact_of_its_runtime():
    arts = [_art("torch-fp32", "torch"), _art("tflite-fp32", "tflite"), _art("tflite-fp16", "tflite", "fp16"),
            _art("tflite-pruned-fp32", "tflite", pruned=True), _art("pt2-int8-ptq", "pt2", "int8", quantization="ptq"),
            _art("pte-int8-ptq", "pte", "int8", quantization="ptq")]
    assert rounds.baselines(arts) == {"tflite-fp16": "tflite-fp32", "tflite-pruned-fp32": "tflite-fp32",
                                         "pt2-int8-ptq": "torch-fp32"}  # no pte-fp32: no baseline for pte-int8


BENCH = {"min_rounds": 3, "max_rounds": 5, "max_seconds": 60.0, "ci_rel_width": 0.1}


def test_rounds_stop_when_intervals_are_narrow_or_a_limit_is_reached():
    narrow, wide = {"a": {"rel_width": 0.05}}, {"a": {"rel_width": 0.3}}
    stop = rounds._stop_reason
    assert stop(2, 1.0, narrow, BENCH) is None  # min_rounds first
    assert stop(3, 1.0, narrow, BENCH) == "intervals narrow enough"
    assert stop(3, 1.0, wide, BENCH) is None
    assert stop(5, 1.0, wide, BENCH) == "max_rounds"
    assert stop(4, 61.0, wide, BENCH) == "max_seconds"
    assert stop(1, 61.0, wide, BENCH) is None  # min_rounds run whatever the time
    assert stop(3, 1.0, {}, BENCH) == "intervals narrow enough"  # nothing to compare


def test_max_rounds_below_min_rounds_is_refused_at_the_door(tmp_path):
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.targets import load_target
    from tests.conftest import write_target

    path = write_target(tmp_path)
    text = path.read_text()
    assert "min_rounds = 2" in text and "max_rounds = 2" in text  # the tests' target, as written by conftest
    path.write_text(text.replace("min_rounds = 2", "min_rounds = 4"))
    with pytest.raises(ConfigError, match=r"benchmark.max_rounds: 2 is below min_rounds = 4"):
        benchmark.settings(load_recipe("fashion-mnist-mobilenetv2"), load_target(str(path)))


def _snap(load1: float, ticks: int, steal: int) -> dict:
    return {"load1": load1, "ticks": ticks, "steal_ticks": steal}


def test_high_load_and_steal_are_warned_about(monkeypatch):
    monkeypatch.setattr(host_load.os, "cpu_count", lambda: 2)
    quiet = host_load.summary([_snap(0.9, 1000, 10), _snap(1.1, 2000, 11)], threads=1)
    assert quiet["warnings"] == [] and quiet["steal_fraction"] == pytest.approx(0.001) and quiet["load1_max"] == 1.1
    busy = host_load.summary([_snap(0.9, 1000, 10), _snap(3.5, 1500, 10), _snap(1.0, 2000, 110)], threads=1)
    assert len(busy["warnings"]) == 2 and "3.5 on 2 cores" in busy["warnings"][0] and "10.0%" in busy["warnings"][1]


def test_snapshot_reads_this_machine():
    s = host_load.snapshot()
    assert s["load1"] >= 0 and s["ticks"] >= s["steal_ticks"] >= 0


def _tiny_pte(tmp_path) -> Artifact:
    import torch

    from pipeline.converters.executorch_lowering import lower

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 10)).eval()
    buffer, _ = lower(model, torch.zeros(1, 1, 8, 8))
    (tmp_path / "tiny.pte").write_bytes(buffer)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32))
    return Artifact(name="pte-fp32", path=str(tmp_path / "tiny.pte"), format="pte", precision="fp32", layout="NCHW",
                    input_shape=(1, 1, 8, 8))


def test_an_executorch_artifact_is_timed_in_a_forked_process_like_in_a_new_one(tmp_path, monkeypatch):
    # torch-linked runtimes are measured in a process forked from a server that imported torch and ExecuTorch:
    # the same measurement as a new interpreter's, without its 1.4 s import of torch
    art = _tiny_pte(tmp_path)
    bench = {"threads": 1, "warmup": 5, "runs": 50}
    forked = rounds._measure(art, tmp_path / "x.npy", bench)
    assert forked["process"].startswith("forked") and forked["runtime"] == "executorch"
    assert forked["latency_ms"]["runs"] == 50 and forked["latency_ms"]["p50"] > 0 and forked["peak_rss_mb"] > 0
    monkeypatch.setattr(rounds, "FORKED", ())
    fresh = rounds._measure(art, tmp_path / "x.npy", bench)
    assert fresh["process"] == "a new Python process"
    assert set(fresh) == set(forked)


def test_a_forked_measurement_that_fails_is_one_line_naming_the_artifact(tmp_path):
    from pipeline.core.errors import ToolError

    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not an ExecuTorch program")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    art = Artifact(name="pte-bad", path=str(bad), format="pte", precision="fp32", layout="NCHW",
                   input_shape=(1, 1, 8, 8))
    with pytest.raises(ToolError) as info:
        rounds._measure(art, tmp_path / "x.npy", {"threads": 1, "warmup": 1, "runs": 2})
    assert str(info.value).startswith("benchmark: pte-bad: ") and "\n" not in str(info.value)
