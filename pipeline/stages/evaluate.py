"""evaluate: every artifact through its own runtime on the evaluation set, against the model it must reproduce and
against the fp32 model it came from.

Per artifact and per output: SQNR (dB), cosine similarity, max absolute and relative error, and top-1 agreement
where an output holds class scores, against its reference (the nearest model it must reproduce: the .pt2 for an
int8 .pte, the float source for a TFLite file) and against its fp32 source (the float PyTorch model of the same
architecture: an int8 file's loss shows even when its own reference shares it). With labels, the recipe's task
metric ([evaluate] metric: top-1 by default) of every artifact, its change against the reference and its drop
against the fp32 model. Tolerances come from the recipe's [tolerances.<precision>] tables; violations are listed in
the output and the runner fails the run on them (unless --no-gates).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.tensors import outputs_of
from pipeline.core.schema import Field, fraction, non_negative, positive
from pipeline.metrics import task
from pipeline.metrics.fidelity import fidelity
from pipeline.models.checkpoint import load_model
from pipeline.recipe.config import Config
from pipeline.runtimes import RUNTIME_OF_FORMAT, TORCH_LINKED
from pipeline.runtimes.batched import run_artifact_all
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import predict


def _tolerance(agreement: float, acc_drop: float, max_abs: float, sqnr: float, cosine: float,
               fp32_agreement: float) -> dict:
    return {
        "min_top1_agreement": Field(float, agreement, check=fraction, hint="between 0 and 1"),
        "max_accuracy_drop": Field(float, acc_drop, check=non_negative, hint=">= 0 (percentage points for top1 and "
                                   "top5, the metric's own units otherwise)"),
        "max_abs_diff": Field(float, max_abs, check=positive, hint="> 0"),
        "min_sqnr_db": Field(float, sqnr, hint="dB, every output against the reference (-inf: no limit)"),
        "min_cosine": Field(float, cosine, check=lambda v: -1 <= v <= 1, hint="between -1 and 1"),
        "min_fp32_agreement": Field(float, fp32_agreement, check=fraction, hint="between 0 and 1 (top-1 agreement "
                                    "with the fp32 model of the same architecture)"),
    }


SCHEMA = {
    "evaluate": {
        "metric": Field(str, "auto", hint="top1, top5, mse, mae, auto (top1 for class ids, mse for float targets) "
                        "or 'file.py:function'"),
        "higher_is_better": Field(bool, True),  # for the user's own metric
    },
    "tolerances": {
        "fp32": _tolerance(0.999, 0.1, 1e-3, 40.0, 0.9999, 0.99),
        "fp16": _tolerance(0.995, 0.3, 5e-2, 25.0, 0.999, 0.98),
        # int8 artifacts against their own PyTorch reference (the .pte) or float source (TFLite): a few steps
        "int8": _tolerance(0.97, 1.0, 4.0, 10.0, 0.9, 0.9),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    return {"data": data.fingerprint(recipe), "slice": target.data["validation"]["eval_samples"],
            "tolerances": recipe.data["tolerances"], "metric": recipe.data["metric_spec"],
            "limits": {k: recipe.data[k]["max_accuracy_drop"] for k in ("decompose", "prune", "quantize")}}


def _summary(per_output: dict[str, dict]) -> dict:
    """One line of an artifact's fidelity over all its outputs: the worst of each figure, the first output's
    agreement (class scores)."""
    rows = list(per_output.values())
    out = {"max_abs_diff": max(r["max_abs_error"] for r in rows), "mean_abs_diff": rows[0]["mean_abs_error"],
           "reference_max_abs_logit": rows[0]["reference_max_abs"], "sqnr_db": min(r["sqnr_db"] for r in rows),
           "cosine": min(r["cosine"] for r in rows)}
    if "top1_agreement" in rows[0]:
        out["top1_agreement"] = rows[0]["top1_agreement"]
    return out


def compare(got: list[np.ndarray] | np.ndarray, reference: list[np.ndarray] | np.ndarray, labels: np.ndarray | None,
            names: list[str] | None = None, metric: dict | None = None) -> dict:
    """Task and fidelity metrics of an artifact's outputs against the reference model's (one array for a
    one-output model works too)."""
    got = [got] if isinstance(got, np.ndarray) else got
    reference = [reference] if isinstance(reference, np.ndarray) else reference
    names = names or [f"output_{i}" for i in range(len(got))]
    per_output = fidelity(got, reference, names)
    out = {"samples": int(len(got[0])), "outputs": per_output, **_summary(per_output)}
    if labels is not None:
        metric = task.resolved(metric or {"name": "auto", "higher_is_better": True}, labels)
        out["metric"] = task.label(metric)
        out["accuracy"] = task.score(metric, got, names, labels)
        out["reference_accuracy"] = task.score(metric, reference, names, labels)
        out["accuracy_delta"] = task.drop(metric, out["reference_accuracy"], out["accuracy"])  # worse: positive
    return out


def violations(art: Artifact, metrics: dict, recipe: dict) -> list[str]:
    """One line per broken limit: artifact, metric, value and limit.

    Fidelity (agreement, SQNR, cosine, max diff, metric change) is checked against the artifact's own reference
    with the tolerances of its precision, and against its fp32 source (top-1 agreement); compression (pruning, int8)
    against the fp32 model with the compression limits.
    """
    name, found = art.name, []
    tol = recipe["tolerances"].get(art.precision)
    metric = metrics.get("metric", "top1")
    what = "accuracy" if metric == "top1" else metric

    def amount(value: float) -> str:  # percentage points for fractions, the metric's own units otherwise
        return f"{value:.2f} points" if metric in ("top1", "top5") else f"{value:.4g}"

    if tol is not None and art.reference:
        if "top1_agreement" in metrics and metrics["top1_agreement"] < tol["min_top1_agreement"]:
            found.append(f"{name}: top1_agreement {metrics['top1_agreement']:.4f} < "
                         f"{tol['min_top1_agreement']} (tolerances.{art.precision}.min_top1_agreement)")
        if "accuracy_delta" in metrics and metrics["accuracy_delta"] > tol["max_accuracy_drop"]:
            found.append(f"{name}: {what} {amount(metrics['accuracy_delta'])} below its reference "
                         f"{art.reference} > {tol['max_accuracy_drop']} (tolerances.{art.precision}.max_accuracy_drop)")
        if metrics["max_abs_diff"] > tol["max_abs_diff"]:
            found.append(f"{name}: max_abs_diff {metrics['max_abs_diff']:.3g} > {tol['max_abs_diff']:g} "
                         f"(tolerances.{art.precision}.max_abs_diff)")
        for output, row in metrics["outputs"].items():
            if row["sqnr_db"] < tol["min_sqnr_db"]:
                found.append(f"{name}: output {output!r} SQNR {row['sqnr_db']:.1f} dB < {tol['min_sqnr_db']:g} "
                             f"against {art.reference} (tolerances.{art.precision}.min_sqnr_db)")
            if row["cosine"] < tol["min_cosine"]:
                found.append(f"{name}: output {output!r} cosine {row['cosine']:.5f} < {tol['min_cosine']:g} "
                             f"against {art.reference} (tolerances.{art.precision}.min_cosine)")
    fp32 = metrics.get("against_fp32")
    if tol is not None and fp32 and "top1_agreement" in fp32 and fp32["top1_agreement"] < tol["min_fp32_agreement"]:
        found.append(f"{name}: top1_agreement with its fp32 model {fp32['source']} {fp32['top1_agreement']:.4f} < "
                     f"{tol['min_fp32_agreement']} (tolerances.{art.precision}.min_fp32_agreement)")
    drop = metrics.get("accuracy_drop")
    float_model = art.precision != "int8"
    for applies, key in ((art.precision == "int8", "quantize"), (art.pruned and float_model, "prune"),
                         (art.lowrank and not art.pruned and float_model, "decompose")):
        if applies and drop is not None and drop > recipe[key]["max_accuracy_drop"]:
            found.append(f"{name}: {what} drop {amount(drop)} against the fp32 model > "
                         f"{recipe[key]['max_accuracy_drop']} ({key}.max_accuracy_drop)")
    return found


def baseline(artifacts: list[Artifact]) -> str:
    """The model every compression is measured against: the fp32 PyTorch model, or the user's imported file."""
    names = [a.name for a in artifacts]
    if "torch-fp32" in names:
        return "torch-fp32"
    imported = [a.name for a in artifacts if "imported_from" in a.extra and not a.reference]
    if not imported:
        raise ValueError("evaluate: no fp32 model to compare with")
    return imported[0]


def fp32_source(art: Artifact, arts: dict[str, Artifact], base: str) -> str:
    """The fp32 model an artifact came from: the float PyTorch model of the same architecture (pruned or factorised
    as it is), else the baseline."""
    for a in arts.values():
        if (a.format == "torch" and a.precision == "fp32" and a.role == "model" and a.pruned == art.pruned
                and a.lowrank == art.lowrank):
            return a.name
    return base


def eval_slice(recipe: Config, target: Config) -> int:
    """How many evaluation samples evaluate uses: the smaller of the recipe's and the target's limits (0: all)."""
    limits = [n for n in (recipe.data["data"]["eval_samples"], target.data["validation"]["eval_samples"]) if n]
    return min(limits, default=0)


def run(ctx: Context) -> StageOutput:
    split = data.eval_split(ctx.recipe, eval_slice(ctx.recipe, ctx.target))
    xs = [np.ascontiguousarray(x) for x in data.model_inputs(ctx.recipe, split)]
    torch.set_num_threads(ctx.threads)
    arts = {a.name: a for a in ctx.upstream_artifacts()}
    results_of: dict[str, list[np.ndarray]] = {}

    def outputs(name: str) -> list[np.ndarray]:
        if name not in results_of:
            art = arts[name]
            results_of[name] = (predict(load_model(art), [torch.from_numpy(x) for x in xs]) if art.format == "torch"
                                else run_artifact_all(art, xs, ctx.threads))
            np.save(ctx.out_dir / f"logits_{name}.npy", results_of[name][0])
            if len(results_of[name]) > 1:
                np.savez(ctx.out_dir / f"outputs_{name}.npz", *results_of[name])
        return results_of[name]

    base = baseline(list(arts.values()))
    # Torch-linked runtimes (PyTorch, .pt2, ExecuTorch) in one lane, the others (ONNX Runtime, LiteRT) in another:
    # up to compute.jobs lanes run at once, each artifact on one thread; the comparisons below only read the results.
    torch_lane = [n for n, a in arts.items() if RUNTIME_OF_FORMAT[a.format] in TORCH_LINKED]
    other_lane = [n for n in arts if n not in torch_lane]
    lanes = [torch_lane, other_lane] if ctx.target.data["compute"]["jobs"] > 1 else [torch_lane + other_lane]
    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        list(pool.map(lambda names: [outputs(n) for n in names], lanes))
    names = [s.name for s in outputs_of(arts[base])]
    metric = task.resolved(ctx.recipe.data["metric_spec"], split.labels)
    fp32_accuracy = None if split.labels is None else task.score(metric, outputs(base), names, split.labels)
    results, found = {}, []
    for art in arts.values():
        if art.role != "model":
            continue
        got = outputs(art.name)
        m = compare(got, outputs(art.reference or art.name), split.labels, names, metric)
        source = fp32_source(art, arts, base)
        if source != art.name:
            against = compare(got, outputs(source), None, names)
            m["against_fp32"] = {"source": source, **{k: v for k, v in against.items() if k != "samples"}}
        m.update({"runtime": RUNTIME_OF_FORMAT[art.format], "format": art.format, "precision": art.precision,
                  "reference": art.reference or art.name, "pruned": art.pruned, "quantization": art.quantization})
        if fp32_accuracy is not None:
            m["accuracy_drop"] = task.drop(metric, fp32_accuracy, m["accuracy"])
        if art.output_quantization:
            m["max_abs_diff_in_output_steps"] = m["max_abs_diff"] / art.output_quantization["scale"]
        results[art.name] = m
        found += violations(art, m, ctx.recipe.data)
        fp32_line = ""
        if "against_fp32" in m and m["against_fp32"]["source"] != m["reference"]:
            a = m["against_fp32"]
            agreement = f"agreement {a['top1_agreement']:.4f}, " if "top1_agreement" in a else ""
            fp32_line = f"; against {a['source']}: {agreement}SQNR {a['sqnr_db']:.1f} dB"
        ctx.log.info("%-26s %s against %s: %sSQNR %.1f dB, max |diff| %.3g%s", art.name,
                     f"{m['metric']} {m['accuracy']:.4f};" if "accuracy" in m else "", m["reference"],
                     f"agreement {m['top1_agreement']:.4f}, " if "top1_agreement" in m else "", m["sqnr_db"],
                     m["max_abs_diff"], fp32_line)
    return StageOutput((), {"metrics": results, "gate_violations": found, "samples": int(len(xs[0])),
                            "baseline": base, "labelled": split.labels is not None, "threads": ctx.threads,
                            "fp32_accuracy": fp32_accuracy, "outputs": names,
                            "metric": {"name": task.label(metric), "higher_is_better": metric["higher_is_better"],
                                       "unit": task.unit(metric)} if split.labels is not None else None,
                            "warnings": data.caveats.evaluation(ctx.recipe, ctx.target, len(xs[0]),
                                                                fp32_accuracy if metric["name"] == "top1" else None)})


STAGE = Stage("evaluate", "accuracy and parity of every artifact in its own runtime",
              ("train", "decompose", "prune", "quantize", "to_onnx", "to_tflite", "to_executorch"), settings, run,
              tools=("onnxruntime", "ai-edge-litert", "executorch", "torch", "numpy"), schema=SCHEMA)
