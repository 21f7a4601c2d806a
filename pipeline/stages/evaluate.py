"""evaluate: every artifact through its own runtime on the evaluation set, against the PyTorch model.

Metrics per artifact: top-1 accuracy (where labels exist), top-1 agreement with PyTorch, max and mean absolute
logit difference. Tolerances come from the recipe's [tolerances.<precision>] table; violations are listed in the
output and the runner fails the run on them (unless --no-gates).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline import data
from pipeline.artifact import Artifact
from pipeline.config import Config
from pipeline.models.checkpoint import load_model
from pipeline.progress import progress
from pipeline.runtimes import RUNTIME_OF_FORMAT, open_session
from pipeline.stage import Context, Stage, StageOutput
from pipeline.training import predict_logits


def settings(recipe: Config, target: Config) -> dict:
    return {"data": recipe.data["data"], "tolerances": recipe.data["tolerances"]}


def compare(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> dict:
    """Task and parity metrics of `logits` against the reference model's logits."""
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


def violations(name: str, precision: str, metrics: dict, tolerances: dict) -> list[str]:
    """One line per broken tolerance: artifact, metric, value and limit."""
    tol = tolerances.get(precision)
    if tol is None:
        return []
    found = []
    if metrics["top1_agreement"] < tol["min_top1_agreement"]:
        found.append(f"{name}: top1_agreement {metrics['top1_agreement']:.4f} < "
                     f"{tol['min_top1_agreement']} (tolerances.{precision}.min_top1_agreement)")
    if "accuracy_delta" in metrics and metrics["accuracy_delta"] > tol["max_accuracy_drop"]:
        found.append(f"{name}: accuracy drop {metrics['accuracy_delta']:.2f} points > "
                     f"{tol['max_accuracy_drop']} (tolerances.{precision}.max_accuracy_drop)")
    if metrics["max_abs_diff"] > tol["max_abs_diff"]:
        found.append(f"{name}: max_abs_diff {metrics['max_abs_diff']:.3g} > {tol['max_abs_diff']:g} "
                     f"(tolerances.{precision}.max_abs_diff)")
    return found


def run_artifact(artifact: Artifact, x: np.ndarray, threads: int) -> np.ndarray:
    session = open_session(artifact, threads)
    batch = artifact.input_shape[0]
    outs = []
    with progress(total=len(x), desc=f"evaluate {artifact.name}", unit="img") as bar:
        for i in range(0, len(x), batch):
            outs.append(session.run(x[i : i + batch]))
            bar.update(batch)
    return np.concatenate(outs)


def run(ctx: Context) -> StageOutput:
    ref_art = ctx.inputs["train"].artifact("torch-fp32")
    split = data.eval_split(ctx.recipe)
    x = data.to_tensor(split.images, data.input_spec(ctx.recipe))
    torch.set_num_threads(ctx.threads)
    reference = predict_logits(load_model(ref_art), torch.from_numpy(x))
    np.save(ctx.out_dir / "logits_torch-fp32.npy", reference)
    results = {ref_art.name: {**compare(reference, reference, split.labels), "runtime": "torch",
                              "format": "torch", "precision": "fp32"}}
    found: list[str] = []
    tolerances = ctx.recipe.data["tolerances"]
    for art in ctx.upstream_artifacts():
        if art.format == "torch":
            continue
        logits = run_artifact(art, x, ctx.threads)
        np.save(ctx.out_dir / f"logits_{art.name}.npy", logits)
        m = {**compare(logits, reference, split.labels), "runtime": RUNTIME_OF_FORMAT[art.format],
             "format": art.format, "precision": art.precision}
        results[art.name] = m
        found += violations(art.name, art.precision, m, tolerances)
        ctx.log.info("%-12s %s agreement %.4f, max |diff| %.3g", art.name,
                     f"accuracy {m['accuracy']:.4f}," if "accuracy" in m else "", m["top1_agreement"],
                     m["max_abs_diff"])
    return StageOutput((), {"metrics": results, "gate_violations": found, "samples": int(len(x)),
                            "labelled": split.labels is not None, "threads": ctx.threads})


STAGE = Stage("evaluate", "accuracy and parity of every artifact in its own runtime", ("train", "to_onnx",
              "to_tflite", "to_executorch"), settings, run, tools=("onnxruntime", "ai-edge-litert", "executorch",
                                                                    "torch", "numpy"))
