"""evaluate: every artifact through its own runtime on the evaluation set, against the PyTorch model.

Metrics per artifact: top-1 accuracy (where labels exist), top-1 agreement with PyTorch, max and mean absolute
logit difference. Tolerances come from the recipe's [tolerances.<precision>] table; violations are listed in the
output and the runner fails the run on them (unless --no-gates).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact
from pipeline.core.schema import Field, fraction, non_negative, positive
from pipeline.models.checkpoint import load_model
from pipeline.recipe.config import Config
from pipeline.runtimes import RUNTIME_OF_FORMAT, TORCH_LINKED
from pipeline.runtimes.batched import run_artifact
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import predict_logits


def _tolerance(agreement: float, acc_drop: float, max_abs: float) -> dict:
    return {
        "min_top1_agreement": Field(float, agreement, check=fraction, hint="between 0 and 1"),
        "max_accuracy_drop": Field(float, acc_drop, check=non_negative, hint=">= 0 (percentage points)"),
        "max_abs_diff": Field(float, max_abs, check=positive, hint="> 0"),
    }


SCHEMA = {
    "tolerances": {
        "fp32": _tolerance(0.999, 0.1, 1e-3),
        "fp16": _tolerance(0.995, 0.3, 5e-2),
        # int8 artifacts against their own PyTorch reference (the .pte) or float source (TFLite): a few steps
        "int8": _tolerance(0.97, 1.0, 4.0),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    return {"data": data.fingerprint(recipe), "slice": target.data["validation"]["eval_samples"],
            "tolerances": recipe.data["tolerances"],
            "limits": {k: recipe.data[k]["max_accuracy_drop"] for k in ("decompose", "prune", "quantize")}}


def compare(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> dict:
    """Task and parity metrics of `logits` against the reference model's logits."""
    # models with more than one output axis (detectors, segmenters) are compared element by element
    logits, reference = logits.reshape(len(logits), -1), reference.reshape(len(reference), -1)
    diff = np.abs(logits.astype(np.float64) - reference.astype(np.float64))
    out = {
        "samples": int(len(logits)),
        "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "reference_max_abs_logit": float(np.abs(reference).max()),
    }
    if labels is not None:
        out["accuracy"] = float((logits.argmax(1) == labels).mean())
        out["reference_accuracy"] = float((reference.argmax(1) == labels).mean())
        out["accuracy_delta"] = round(100 * (out["reference_accuracy"] - out["accuracy"]), 4)  # points lost
    return out


def violations(art: Artifact, metrics: dict, recipe: dict) -> list[str]:
    """One line per broken limit: artifact, metric, value and limit.

    Parity (agreement, max diff, accuracy change) is checked against the artifact's own reference with the
    tolerances of its precision; compression (pruning, int8) against the fp32 model with the compression limits.
    """
    name, found = art.name, []
    tol = recipe["tolerances"].get(art.precision)
    if tol is not None and art.reference:
        if metrics["top1_agreement"] < tol["min_top1_agreement"]:
            found.append(f"{name}: top1_agreement {metrics['top1_agreement']:.4f} < "
                         f"{tol['min_top1_agreement']} (tolerances.{art.precision}.min_top1_agreement)")
        if "accuracy_delta" in metrics and metrics["accuracy_delta"] > tol["max_accuracy_drop"]:
            found.append(f"{name}: accuracy {metrics['accuracy_delta']:.2f} points below its reference "
                         f"{art.reference} > {tol['max_accuracy_drop']} (tolerances.{art.precision}.max_accuracy_drop)")
        if metrics["max_abs_diff"] > tol["max_abs_diff"]:
            found.append(f"{name}: max_abs_diff {metrics['max_abs_diff']:.3g} > {tol['max_abs_diff']:g} "
                         f"(tolerances.{art.precision}.max_abs_diff)")
    drop = metrics.get("accuracy_drop")
    float_model = art.precision != "int8"
    for applies, key in ((art.precision == "int8", "quantize"), (art.pruned and float_model, "prune"),
                         (art.lowrank and not art.pruned and float_model, "decompose")):
        if applies and drop is not None and drop > recipe[key]["max_accuracy_drop"]:
            found.append(f"{name}: accuracy drop {drop:.2f} points against the fp32 model > "
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


def eval_slice(recipe: Config, target: Config) -> int:
    """How many evaluation samples evaluate uses: the smaller of the recipe's and the target's limits (0: all)."""
    limits = [n for n in (recipe.data["data"]["eval_samples"], target.data["validation"]["eval_samples"]) if n]
    return min(limits, default=0)


def run(ctx: Context) -> StageOutput:
    split = data.eval_split(ctx.recipe, eval_slice(ctx.recipe, ctx.target))
    x = data.to_tensor(split.images, data.input_spec(ctx.recipe))
    torch.set_num_threads(ctx.threads)
    arts = {a.name: a for a in ctx.upstream_artifacts()}
    logits: dict[str, np.ndarray] = {}

    def outputs(name: str) -> np.ndarray:
        if name not in logits:
            art = arts[name]
            logits[name] = (predict_logits(load_model(art), torch.from_numpy(x)) if art.format == "torch"
                            else run_artifact(art, x, ctx.threads))
            np.save(ctx.out_dir / f"logits_{name}.npy", logits[name])
        return logits[name]

    base = baseline(list(arts.values()))
    # Torch-linked runtimes (PyTorch, .pt2, ExecuTorch) in one lane, the others (ONNX Runtime, LiteRT) in another:
    # up to compute.jobs lanes run at once, each artifact on one thread; the comparisons below only read the results.
    torch_lane = [n for n, a in arts.items() if RUNTIME_OF_FORMAT[a.format] in TORCH_LINKED]
    other_lane = [n for n in arts if n not in torch_lane]
    lanes = [torch_lane, other_lane] if ctx.target.data["compute"]["jobs"] > 1 else [torch_lane + other_lane]
    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        list(pool.map(lambda names: [outputs(n) for n in names], lanes))
    fp32 = outputs(base)
    fp32_accuracy = None if split.labels is None else float((fp32.argmax(1) == split.labels).mean())
    results, found = {}, []
    for art in arts.values():
        if art.role != "model":
            continue
        got = outputs(art.name)
        m = compare(got, outputs(art.reference or art.name), split.labels)
        m.update({"runtime": RUNTIME_OF_FORMAT[art.format], "format": art.format, "precision": art.precision,
                  "reference": art.reference or art.name, "pruned": art.pruned, "quantization": art.quantization})
        if fp32_accuracy is not None:
            m["accuracy_drop"] = round(100 * (fp32_accuracy - m["accuracy"]), 4)
        if art.output_quantization:
            m["max_abs_diff_in_output_steps"] = m["max_abs_diff"] / art.output_quantization["scale"]
        results[art.name] = m
        found += violations(art, m, ctx.recipe.data)
        ctx.log.info("%-26s %s agreement with %s %.4f, max |diff| %.3g", art.name,
                     f"accuracy {m['accuracy']:.4f}," if "accuracy" in m else "", m["reference"],
                     m["top1_agreement"], m["max_abs_diff"])
    return StageOutput((), {"metrics": results, "gate_violations": found, "samples": int(len(x)), "baseline": base,
                            "labelled": split.labels is not None, "threads": ctx.threads,
                            "fp32_accuracy": fp32_accuracy,
                            "warnings": data.caveats.evaluation(ctx.recipe, ctx.target, len(x), fp32_accuracy)})


STAGE = Stage("evaluate", "accuracy and parity of every artifact in its own runtime",
              ("train", "decompose", "prune", "quantize", "to_onnx", "to_tflite", "to_executorch"), settings, run,
              tools=("onnxruntime", "ai-edge-litert", "executorch", "torch", "numpy"), schema=SCHEMA)
