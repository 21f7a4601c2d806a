"""benchmark: host latency and memory of every artifact and of PyTorch eager, in interleaved rounds of fresh processes.

One round runs every artifact once, each in its own process (A B C ... A B C ...), so that a slow spell of a shared
machine hits all of them alike instead of one. Each artifact's numbers are those of its median round; every speed-up
against the fp32 artifact of the same runtime is a ratio of median p50s with a bootstrap interval over the rounds.
After min_rounds, rounds stop once every interval is narrow enough ([benchmark] ci_rel_width), at max_rounds, or
when max_seconds have passed.
"""

from __future__ import annotations

import numpy as np

from pipeline import data
from pipeline.core.errors import ConfigError
from pipeline.measure import host_load
from pipeline.measure.bench_worker import save_inputs
from pipeline.measure.rounds import baselines, exclusive_machine, round_result, run_rounds
from pipeline.recipe.config import Config
from pipeline.stages.contract import Context, Stage, StageOutput

NOT_TIMED = {"pt2": "the PyTorch int8 reference: float arithmetic around quantize/dequantize ops, no phone runs it"}


def settings(recipe: Config, target: Config) -> dict:
    bench = target.data["benchmark"]
    if bench["max_rounds"] < bench["min_rounds"]:
        raise ConfigError(target.path, "benchmark.max_rounds",
                          f"{bench['max_rounds']} is below min_rounds = {bench['min_rounds']}")
    return {"benchmark": bench, "device": target.data["device"]["kind"]}


def run(ctx: Context) -> StageOutput:
    bench = ctx.target.data["benchmark"]
    xs = data.model_inputs(ctx.recipe, data.eval_split(ctx.recipe, 1))
    input_path = ctx.out_dir / "input.npz"
    save_inputs(input_path, [np.asarray(x) for x in xs])
    models = [a for a in ctx.upstream_artifacts() if a.role == "model"]
    # A .pt2 is the PT2E int8 reference the .pte must reproduce: PyTorch runs its int8 as float arithmetic around
    # quantize/dequantize ops (0.13-0.3x of fp32 here), so its latency says nothing about any phone, and its process
    # took the longest to start of all (torch.export.load): it is evaluated, not timed.
    not_timed = {a.name: NOT_TIMED[a.format] for a in models if a.format in NOT_TIMED}
    artifacts = [a for a in models if a.name not in not_timed]
    base_of = baselines(artifacts)
    with exclusive_machine(ctx.log):
        rounds, loads, speed, stopped, seconds = run_rounds(artifacts, input_path, bench, base_of)
    input_path.unlink()
    results = {a.name: round_result(a, rounds[a.name], speed.get(a.name)) for a in artifacts}
    for name, res in results.items():
        lat, s = res["latency_ms"], res["speedup"]
        ctx.log.info("%-24s p50 %.3f ms (min %.3f) prepare %.3f ms  cv %.2f  load %.0f ms  peak RSS %.0f MB%s", name,
                     lat["p50"], min(r["min"] for r in res["rounds"]), res["prepare_ms"]["p50"], lat["cv"],
                     res["load_ms"], res["peak_rss_mb"],
                     f"  {s['ratio']:.2f}x [{s['ci_low']:.2f}, {s['ci_high']:.2f}] vs {s['baseline']}" if s else "")
    machine = host_load.summary(loads, bench["threads"])
    ctx.log.info("benchmark: %d round(s) in %.0f s (stopped: %s)", len(loads) - 1, seconds, stopped)
    for w in machine["warnings"]:
        ctx.log.warning("benchmark: %s", w)
    return StageOutput((), {"results": results, "settings": bench, "device": "host", "rounds": len(loads) - 1,
                            "stopped": stopped, "seconds": seconds, "machine": machine, "not_timed": not_timed})


STAGE = Stage("benchmark", "host latency (p50/p90/p99, cv) in interleaved rounds with speed-up intervals, load time "
              "and peak RSS per artifact", ("train", "decompose", "prune", "quantize", "to_onnx", "to_tflite",
                                                        "to_executorch"),
              settings, run, tools=("torch", "onnxruntime", "ai-edge-litert", "executorch"))
