"""Runs a .tflite on the device with LiteRT; the same contract as et_runner.cpp:

    python3 litert_runner.py MODEL.tflite INPUTS.npy OUTDIR THREADS WARMUP RUNS

INPUTS.npy holds N samples for the model's single input, whose first dimension is its batch b (N must be a
multiple of b). Every sample runs once to give OUTDIR/outputs.npy (N, ...); then the first batch runs WARMUP
untimed and RUNS timed times, written to OUTDIR/latencies.json. Errors: one line on stderr, exit code 1.
It runs on the device's own python3 with only numpy and ai-edge-litert on its path: standard library only.
"""

import json
import sys
import time


def load_interpreter(model, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # an older device image may carry the runtime under its former name
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=model, num_threads=threads if threads > 0 else None)


def run(argv):
    import numpy as np

    if len(argv) != 6:
        raise ValueError("usage: litert_runner.py MODEL.tflite INPUTS.npy OUTDIR THREADS WARMUP RUNS")
    model, inputs_path, outdir = argv[0], argv[1], argv[2]
    threads, warmup, runs = int(argv[3]), int(argv[4]), int(argv[5])
    started = time.perf_counter()
    interpreter = load_interpreter(model, threads)
    interpreter.allocate_tensors()
    load_ms = (time.perf_counter() - started) * 1000
    in_details = interpreter.get_input_details()
    out_details = interpreter.get_output_details()
    if len(in_details) != 1:
        raise ValueError(f"the runner supports models with one input, this one has {len(in_details)}")
    shape, dtype = tuple(in_details[0]["shape"]), in_details[0]["dtype"]
    inputs = np.load(inputs_path)
    if inputs.dtype != dtype:
        raise ValueError(f"input dtype {inputs.dtype} differs from the model's {np.dtype(dtype)}")
    batch = shape[0] if shape else 1
    if inputs.shape[1:] != shape[1:] or len(inputs) % batch:
        raise ValueError(f"inputs {inputs.shape} do not fit the model's input {shape}")

    def invoke(chunk):
        interpreter.set_tensor(in_details[0]["index"], chunk)
        interpreter.invoke()

    outputs = []
    for start in range(0, len(inputs), batch):
        invoke(inputs[start : start + batch])
        outputs.append(interpreter.get_tensor(out_details[0]["index"]).copy())
    np.save(f"{outdir}/outputs.npy", np.concatenate(outputs))

    first = inputs[:batch]
    for _ in range(warmup):
        invoke(first)
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter()
        invoke(first)
        latencies.append((time.perf_counter() - t0) * 1000)
    report = {
        "runtime": "litert",
        "threads": threads,
        "warmup": warmup,
        "batch": int(batch),
        "load_ms": load_ms,
        "latencies_ms": latencies,
    }
    with open(f"{outdir}/latencies.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    try:
        run(sys.argv[1:])
    except Exception as exc:  # the host reads one line; the type says what kind of failure it was
        print(f"litert_runner: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
