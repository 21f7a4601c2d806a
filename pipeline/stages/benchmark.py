"""benchmark: host latency and memory of every artifact and of PyTorch eager, each in a fresh process."""

from __future__ import annotations

import json

import numpy as np

from pipeline import data
from pipeline.config import Config
from pipeline.proc import python_module
from pipeline.proc import run as run_process
from pipeline.progress import progress
from pipeline.stage import Context, Stage, StageOutput


def settings(recipe: Config, target: Config) -> dict:
    return {"benchmark": target.data["benchmark"], "device": target.data["device"]["kind"]}


def run(ctx: Context) -> StageOutput:
    bench = ctx.target.data["benchmark"]
    x = data.to_tensor(data.eval_split(ctx.recipe, 1).images, data.input_spec(ctx.recipe))
    input_path = ctx.out_dir / "input.npy"
    np.save(input_path, x)
    artifacts = [a for a in ctx.upstream_artifacts() if a.role == "model"]
    results = {}
    with progress(total=len(artifacts), desc="benchmark", unit="model") as bar:
        for art in artifacts:
            args = {"artifact": art.to_dict(), "input": str(input_path), "threads": bench["threads"],
                    "warmup": bench["warmup"], "runs": bench["runs"]}
            proc = run_process(python_module("pipeline.bench_worker", json.dumps(args)),
                               what=f"benchmark: {art.name}", timeout=1800)
            res = json.loads(proc.stdout.decode().strip().splitlines()[-1])
            res.update({"format": art.format, "precision": art.precision, "size_bytes": art.size_bytes,
                        "device": "host"})  # measured here; a device target's own numbers come from on_device
            results[art.name] = res
            lat = res["latency_ms"]
            ctx.log.info("%-12s p50 %.3f ms  p90 %.3f  cv %.2f  load %.0f ms  peak RSS %.0f MB", art.name,
                         lat["p50"], lat["p90"], lat["cv"], res["load_ms"], res["peak_rss_mb"])
            bar.update(1)
    input_path.unlink()
    return StageOutput((), {"results": results, "settings": bench, "device": "host"})


STAGE = Stage("benchmark", "host latency (p50/p90/p99, cv), load time and peak RSS per artifact",
              ("train", "prune", "quantize", "to_onnx", "to_tflite", "to_executorch"), settings, run,
              tools=("torch", "onnxruntime", "ai-edge-litert", "executorch"))
