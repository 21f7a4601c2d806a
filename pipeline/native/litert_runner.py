"""Runs a .tflite on the device with LiteRT; the same contract as et_runner.cpp:

    python3 litert_runner.py MODEL.tflite OUTDIR THREADS WARMUP RUNS INPUT_0.npy [INPUT_1.npy ...]

One INPUT_i.npy per model input, in the model's input order, each N samples in the input's own dtype (float32,
int8, uint8, int32, int64 or bool) and per-sample shape; the input's first dimension is the model's batch b (N a
multiple of b). Every sample runs once to give OUTDIR/OUTPUT_j.npy (N, ...) for each model output j, in the file's
output order; then the first batch runs WARMUP untimed and RUNS timed times, written to OUTDIR/latencies.json with
the output count. Errors: one line on stderr naming the input or output index, exit code 1.
It runs on the device's own python3 with only numpy and ai-edge-litert on its path: standard library only.
"""

import json
import sys
import time

DTYPES = ("float32", "int8", "uint8", "int32", "int64", "bool")


def load_interpreter(model, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # an older device image may carry the runtime under its former name
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=model, num_threads=threads if threads > 0 else None)


def shape_text(dims):
    return "(" + ", ".join(str(int(d)) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def read_inputs(paths, details):
    """The input files, checked against the model's inputs (count, dtype, per-sample shape, batch multiple)."""
    import numpy as np

    if len(paths) != len(details):
        raise ValueError(f"{len(paths)} input arrays given, the model takes {len(details)}")
    arrays = []
    for i, (path, detail) in enumerate(zip(paths, details, strict=True)):
        x = np.load(path)
        shape, dtype = tuple(detail["shape"]), np.dtype(detail["dtype"])
        where = f"input {i} ({path})"
        if dtype.name not in DTYPES:
            raise ValueError(f"{where}: the model's dtype {dtype.name} is not one the runner exchanges")
        if x.dtype != dtype:
            raise ValueError(f"{where}: dtype {x.dtype} differs from the model's {dtype.name}")
        batch = shape[0] if shape else 1
        if x.ndim != max(len(shape), 1) or x.shape[1:] != shape[1:]:
            raise ValueError(f"{where}: per-sample shape {shape_text(x.shape[1:])} differs from the model's "
                             f"{shape_text(shape[1:])} (model input {shape_text(shape)})")
        if not len(x) or len(x) % batch:
            raise ValueError(f"{where}: {len(x)} samples are not a multiple of the model's batch {batch}")
        if arrays and len(x) // batch != len(arrays[0][0]) // arrays[0][1]:
            raise ValueError(f"input {i}: {len(x)} samples, input 0 has {len(arrays[0][0])}")
        arrays.append((x, batch))
    return arrays


def run(argv):
    import numpy as np

    if len(argv) < 6:
        raise ValueError("usage: litert_runner.py MODEL.tflite OUTDIR THREADS WARMUP RUNS INPUT_0.npy [INPUT_1.npy"
                         " ...]")
    model, outdir = argv[0], argv[1]
    threads, warmup, runs = int(argv[2]), int(argv[3]), int(argv[4])
    started = time.perf_counter()
    interpreter = load_interpreter(model, threads)
    interpreter.allocate_tensors()
    load_ms = (time.perf_counter() - started) * 1000
    in_details = interpreter.get_input_details()
    out_details = interpreter.get_output_details()
    inputs = read_inputs(argv[5:], in_details)
    for j, detail in enumerate(out_details):
        if np.dtype(detail["dtype"]).name not in DTYPES:
            raise ValueError(f"output {j}: dtype {np.dtype(detail['dtype']).name} is not one the runner exchanges")

    def invoke(k):
        for detail, (x, batch) in zip(in_details, inputs, strict=True):
            interpreter.set_tensor(detail["index"], x[k * batch : (k + 1) * batch])
        interpreter.invoke()

    batches = len(inputs[0][0]) // inputs[0][1]
    outputs = [[] for _ in out_details]
    for k in range(batches):
        invoke(k)
        for j, detail in enumerate(out_details):
            outputs[j].append(interpreter.get_tensor(detail["index"]).copy())
    for j, chunks in enumerate(outputs):
        np.save(f"{outdir}/OUTPUT_{j}.npy", np.concatenate([c.reshape(c.shape or (1,)) for c in chunks]))

    for _ in range(warmup):
        invoke(0)
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter()
        invoke(0)
        latencies.append((time.perf_counter() - t0) * 1000)
    report = {
        "runtime": "litert",
        "threads": threads,
        "warmup": warmup,
        "batch": int(inputs[0][1]),
        "outputs": len(out_details),
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
