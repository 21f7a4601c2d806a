"""Reading TFLite benchmark_model's output, on samples written in the format its current and older builds print."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ToolError
from pipeline.devices.benchmark_model_output import benchmark_model_argv, parse_benchmark_model

RECENT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/phone-pipeline/model.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /data/local/tmp/phone-pipeline/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.182
INFO: Initialized session in 41.207ms.
INFO: Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=5 first=2310 curr=612 min=598 max=2310 avg=950.4 std=684 p5=598 median=617 p95=2310

INFO: Running benchmark for at least 50 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=640 curr=601 min=587 max=702 avg=611.38 std=19 p5=590 median=606 p95=655

INFO: Inference timings in us: Init: 41207, First inference: 2310, Warmup (avg): 950.4, Inference (avg): 611.38
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the \
actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.125 overall=4.5
"""

OLDER = """\
Initialized session in 0.896ms
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=215 first=12231 curr=2106 min=2065 max=12231 avg=2331.42 std=746

Running benchmark for at least 100 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=459 first=2143 curr=2101 min=2056 max=2656 avg=2177.1 std=124

Inference timings in us: Init: 896, First inference: 12231, Warmup (avg): 2331.42, Inference (avg): 2177.1
Peak memory footprint (MB): init=1.2 overall=2.5
"""


def test_recent_output_gives_timings_run_statistics_and_memory():
    timings = parse_benchmark_model(RECENT)
    assert timings.init_us == 41207 and timings.first_inference_us == 2310
    assert timings.warmup_avg_us == 950.4 and timings.inference_avg_us == 611.38
    assert timings.runs["count"] == 50 and timings.runs["median"] == 606 and timings.runs["p95"] == 655
    assert timings.warmup["count"] == 5
    assert (timings.memory_init_mb, timings.memory_overall_mb) == (3.125, 4.5)


def test_older_output_without_prefix_or_percentiles_still_parses():
    timings = parse_benchmark_model(OLDER)
    assert timings.inference_avg_us == 2177.1
    assert timings.runs == {
        "count": 459,
        "first": 2143,
        "curr": 2101,
        "min": 2056,
        "max": 2656,
        "avg": 2177.1,
        "std": 124,
    }
    assert timings.memory_overall_mb == 2.5


def test_failed_benchmark_names_its_last_line():
    failed = "INFO: Loaded model /data/local/tmp/m.tflite\nERROR: Didn't find op for builtin opcode 'GELU'\n"
    with pytest.raises(ToolError, match="GELU"):
        parse_benchmark_model(failed)


def test_command_line_runs_exactly_the_requested_iterations():
    argv = benchmark_model_argv("/data/local/tmp/benchmark_model", "m.tflite", threads=4, warmup=5, runs=50)
    assert argv[0] == "/data/local/tmp/benchmark_model"
    assert {
        "--graph=m.tflite",
        "--num_threads=4",
        "--warmup_runs=5",
        "--num_runs=50",
        "--min_secs=0",
        "--warmup_min_secs=0",
    } <= set(argv)
