"""on_device: every shipped .tflite and .pte run on the target's device, checked against the host's outputs.

For an adb target, each model artifact runs on the first `[validation] samples` test samples (every model input in
reference form, converted to each input's layout and type in the file) through `pipeline.devices.run_model`; all
its outputs come back and are compared with the same artifact's outputs on the host (top-1 agreement of the first
output, max abs difference of each output), and
its latency is timed on the device ([benchmark] warmup, runs, threads, the [device] core_mask through taskset
where the device has it, an optional cool-down between models, thermal zones before and after where readable).
Latencies measured under emulation carry `emulated: true` and must never be compared with a phone's.
Gate: an artifact whose device agreement with the host is below the target's [validation] min_host_agreement
fails the run (unless --no-gates) and is never shipped to that target by `pipeline release`.

Each artifact's result is kept in build/cache/on_device_parts/ as soon as it is measured, keyed by the artifact's
hash and every setting that changes it: when the device is lost halfway, the stage fails with one line naming the
device and the stage, and a rerun measures only what is missing. A host target skips this stage.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from pipeline import data
from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.partial_results import PartialResults, part_key
from pipeline.artifacts.tensors import TensorSpec, inputs_of, outputs_of, specs_to_list
from pipeline.core.errors import ToolError, UserError
from pipeline.devices import Device, device_for
from pipeline.devices.run_model import run_model
from pipeline.measure.stats import latency_summary
from pipeline.recipe.config import Config
from pipeline.runtimes import RUNTIME_OF_FORMAT, dequantized, open_session, to_artifact_inputs
from pipeline.runtimes.tflite_file import file_order
from pipeline.stages.contract import Context, RunFlags, Stage, StageOutput

DEVICE_FORMATS = ("tflite", "pte")
RUN_TIMEOUT_S = 1200  # one artifact: all samples once, then warm-up and timed runs; emulation is slow
CODE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # kept results are dropped when this file changes


def settings(recipe: Config, target: Config) -> dict:
    t = target.data
    return {"device": t["device"], "validation": t["validation"], "benchmark": t["benchmark"],
            "data": data.fingerprint(recipe)}


def device_artifacts(ctx: Context) -> tuple[list[Artifact], dict[str, str]]:
    """The shipped .tflite/.pte artifacts this device runs, and why the others are left out."""
    runtimes = ctx.target.data["device"]["runtimes"]
    binaries = ctx.target.data["device"]["benchmark_binaries"]
    chosen, left_out = [], {}
    for art in ctx.upstream_artifacts():
        if art.format not in DEVICE_FORMATS or getattr(art, "role", "model") != "model":
            continue
        if runtimes and RUNTIME_OF_FORMAT[art.format] not in runtimes:
            left_out[art.name] = f"runtime {RUNTIME_OF_FORMAT[art.format]} not in the target's [device] runtimes"
            continue
        if art.format == "tflite" and binaries.get("litert", "auto") not in ("", "auto"):
            # A phone's TFLite benchmark_model times a model but returns no outputs to validate.
            left_out[art.name] = ("the target's litert binary is benchmark_model (timings only); validating .tflite "
                                  "outputs needs the python3 LiteRT runner, which Android lacks")
            continue
        chosen.append(art)
    return chosen, left_out


def positions(art: Artifact) -> tuple[list[int], list[int]]:
    """The model's input and output index of each of the file's own inputs and outputs (a device runner feeds and
    returns them in the file's order; a .tflite from onnx2tf has them sorted by name)."""
    n_in, n_out = len(inputs_of(art)), len(outputs_of(art))
    if art.format != "tflite":
        return list(range(n_in)), list(range(n_out))
    return file_order(Path(art.path), art.extra.get("tflite_tensor_indices"), n_in, n_out)


def host_outputs(art: Artifact, xs: list[np.ndarray], threads: int) -> list[np.ndarray]:
    """The same file's raw outputs on this machine, in the model's order, batch by batch (the session's own
    runtime: same loading and threads as every host measurement)."""
    session = open_session(art, threads)
    batch = inputs_of(art)[0].shape[0] or 1
    chunks = [session.invoke(session.prepare([x[i : i + batch] for x in xs])) for i in range(0, len(xs[0]), batch)]
    return [np.concatenate([np.asarray(c[j]) for c in chunks]) for j in range(len(chunks[0]))]


def et_runner_of(target: Config) -> Path | None:
    """A prebuilt ExecuTorch runner the target names (a phone's NDK build), or None to build one here."""
    given = target.data["device"]["benchmark_binaries"].get("executorch", "auto")
    return None if given in ("", "auto") else Path(given)


def compare(device_out: list[np.ndarray], host_out: list[np.ndarray], labels: np.ndarray | None,
            specs: tuple[TensorSpec, ...]) -> dict:
    """Agreement of the device's outputs with the host's outputs of the same artifact: top-1 of the first output
    (the class scores of a classifier), differences of every output; the top-level differences are the worst."""
    per_output = [output_diffs(d, h, spec) for d, h, spec in zip(device_out, host_out, specs, strict=True)]
    first, host_first = device_out[0].reshape(len(device_out[0]), -1), host_out[0].reshape(len(host_out[0]), -1)
    top1 = labels is not None and labels.ndim == 1
    steps = [o["max_diff_steps"] for o in per_output if o["max_diff_steps"] is not None]
    return {
        "samples": int(len(first)),
        "accuracy": float((first.argmax(1) == labels).mean()) if top1 else None,
        "host_accuracy": float((host_first.argmax(1) == labels).mean()) if top1 else None,
        "host_agreement": float((first.argmax(1) == host_first.argmax(1)).mean()),
        "max_abs_diff": max(o["max_abs_diff"] for o in per_output),
        "max_rel_diff": max(o["max_rel_diff"] for o in per_output),
        "max_diff_steps": max(steps) if steps else None,
        "outputs": per_output,
    }


def output_diffs(device_out: np.ndarray, host_out: np.ndarray, spec: TensorSpec) -> dict:
    diff = float(np.abs(device_out.astype(np.float64) - host_out.astype(np.float64)).max())
    scale = (spec.quantization or {}).get("scale")
    return {
        "name": spec.name,
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(float(np.abs(host_out.astype(np.float64)).max()), 1e-30),
        "max_diff_steps": None if not scale else diff / float(scale),  # in output quantization steps
    }


def measure(device: Device, art: Artifact, xs: list[np.ndarray], labels: np.ndarray | None, ctx: Context) -> dict:
    """Run one artifact on the device with every input, time it, and compare every output with the host's."""
    dev, bench = ctx.target.data["device"], ctx.target.data["benchmark"]
    specs = outputs_of(art)
    if len(xs) != len(inputs_of(art)):
        raise UserError(f"on_device: the data gives {len(xs)} inputs, {art.name} takes {len(inputs_of(art))} "
                        f"({', '.join(s.name for s in inputs_of(art))}): check the recipe's [data] inputs")
    file_inputs = to_artifact_inputs(xs, art)  # the model's order, each in the file's layout and type
    in_pos, out_pos = positions(art)
    result = run_model(device, Path(art.path), art.format, [file_inputs[j] for j in in_pos],
                       threads=bench["threads"], warmup=bench["warmup"], runs=bench["runs"],
                       core_mask=dev["core_mask"] or None, timeout=RUN_TIMEOUT_S,
                       et_runner=et_runner_of(ctx.target) if art.format == "pte" else None)
    host = host_outputs(art, xs, ctx.threads)
    if len(result.outputs) != len(host):
        raise ToolError(f"{art.name}: the device returned {len(result.outputs)} outputs, the host {len(host)}")
    if len(specs) != len(host):
        raise ToolError(f"{art.name}: its metadata records {len(specs)} outputs, the file returns {len(host)}")
    from_device = [result.outputs[out_pos.index(j)] for j in range(len(specs))]  # back to the model's order
    device_out = [dequantized(y, s).reshape(h.shape) for y, h, s in zip(from_device, host, specs, strict=True)]
    host_out = [dequantized(h, s) for h, s in zip(host, specs, strict=True)]
    info = result.device_info
    try:
        thermal_after = device.probe().thermal_millicelsius
    except ToolError:
        thermal_after = None  # measured; a device lost right now fails on the next artifact instead
    return {
        "format": art.format,
        "precision": art.precision,
        "sha256": art.sha256,
        **compare(device_out, host_out, labels, specs),
        "device": ctx.target.name,
        "serial": getattr(device, "serial", ""),
        "emulated": bool(dev["emulated"]),
        "abi": info["arch"],
        "runtime": info["runtime"],
        "threads": info["threads"],
        "warmup": bench["warmup"],
        "latency_ms": latency_summary(result.latencies_ms),
        "load_ms": info["load_ms"],
        "core_mask": info["core_mask"],
        "core_mask_applied": info["core_mask_applied"],
        "thermal_before": info["thermal_millicelsius"] or None,
        "thermal_after": thermal_after or None,
        "cooldown_s": bench["cooldown_s"],
    }


def violations(results: dict[str, dict], target: Config) -> list[str]:
    """Gate lines for artifacts whose device outputs disagree with the host's more than the target allows."""
    limit = target.data["validation"]["min_host_agreement"]
    return [f"{name} on {r['device']}: host agreement {r['host_agreement']:.4f} < {limit:g} "
            f"(validation.min_host_agreement in {target.path.name})"
            for name, r in results.items() if r["host_agreement"] < limit]


def remeasure(flags: RunFlags) -> bool:
    """--force, or --from this stage or an earlier one: measure again instead of reusing kept results."""
    return flags.force or flags.from_stage not in (None, "report")


def skip(recipe: Config, target: Config) -> str | None:
    return "host target" if target.data["device"]["kind"] == "host" else None


def run(ctx: Context) -> StageOutput:
    dev = ctx.target.data["device"]
    reason = skip(ctx.recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    artifacts, left_out = device_artifacts(ctx)
    split = data.eval_split(ctx.recipe, ctx.target.data["validation"]["samples"])
    xs = data.model_inputs(ctx.recipe, split)
    # Kept beside the stage cache (out_dir is build/cache/on_device/<tmp>), outliving a failed stage.
    parts = PartialResults(ctx.out_dir.parent.parent / "on_device_parts")
    common = settings(ctx.recipe, ctx.target)
    device = device_for({**dev, "name": ctx.target.name})
    serial = getattr(device, "serial", "")
    results, resumed = {}, []
    bench = ctx.target.data["benchmark"]
    fresh = remeasure(ctx.flags)
    for art in artifacts:
        key = part_key(art.sha256, specs_to_list(inputs_of(art)), specs_to_list(outputs_of(art)), common, CODE)
        done = None if fresh else parts.load(key)
        if done is not None:
            results[art.name] = done
            resumed.append(art.name)
            ctx.log.info("%-14s measured before (kept from an earlier run)", art.name)
            continue
        if len(results) > len(resumed) and bench["cooldown_s"]:
            time.sleep(bench["cooldown_s"])  # a phone heated by the previous model throttles the next one
        try:
            res = measure(device, art, xs, split.labels, ctx)
        except ToolError as exc:
            raise ToolError(f"stage on_device, {art.name} on {ctx.target.name} ({serial}): {exc} "
                            f"[{len(results)} of {len(artifacts)} artifacts measured and kept; rerun to continue]"
                            ) from None
        parts.save(key, res)
        results[art.name] = res
        lat = res["latency_ms"]
        ctx.log.info("%-14s %s agreement with host %.4f, max |diff| %.3g, %s p50 %.2f ms cv %.2f", art.name,
                     "" if res["accuracy"] is None else f"accuracy {res['accuracy']:.4f},", res["host_agreement"],
                     res["max_abs_diff"], "EMULATED" if res["emulated"] else "", lat["p50"], lat["cv"])
    return StageOutput((), {"device": ctx.target.name, "serial": serial, "emulated": bool(dev["emulated"]),
                            "samples": int(len(xs[0])), "results": results, "left_out": left_out,
                            "resumed": resumed, "settings": bench,
                            "min_host_agreement": ctx.target.data["validation"]["min_host_agreement"],
                            "gate_violations": violations(results, ctx.target)})


STAGE = Stage("on_device", "outputs, accuracy and latency of each .tflite/.pte on the target's device, against "
              "the host's", ("quantize", "to_tflite", "to_executorch"), settings, run,
              tools=("ai-edge-litert", "executorch", "numpy"), skip=skip)
