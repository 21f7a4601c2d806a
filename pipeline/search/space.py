"""The search space: a recipe's [search] table -> Optuna parameters -> the `--set` overrides of one trial's run.

Every parameter is a setting the recipe already has (pruning, decomposition, quantization method) or a choice the
target makes (which runtime's artifact is shipped), so a trial is an ordinary pipeline run of a derived recipe and
shares every cached stage with the trials before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.artifacts.artifact import artifact_name

FORMAT_OF_RUNTIME = {"tflite": "tflite", "executorch": "pte"}
# ExecuTorch artifacts here are fp32 or int8: the XNNPACK lowering has no fp16 .pte target in this project
PRECISIONS_OF_RUNTIME = {"tflite": ("fp32", "fp16", "int8-ptq", "int8-qat"),
                         "executorch": ("fp32", "int8-ptq", "int8-qat")}
STEP_MACS = 0.25
STEP_ENERGY = 0.05


@dataclass(frozen=True)
class Candidate:
    """What one trial builds and ships: the recipe and target overrides, and the artifact that is measured."""

    params: dict[str, Any]
    runtime: str
    artifact: str  # e.g. "pte-lowrank-pruned-int8-ptq"
    baseline: str  # the fp32 artifact of the same runtime, e.g. "pte-fp32"
    recipe_set: dict[str, Any]
    target_set: dict[str, Any]


def suggest(trial, space: dict) -> dict[str, Any]:
    """Ask an Optuna trial for one point of the space (define-by-run: a setting exists only where it matters)."""
    runtime = trial.suggest_categorical("runtime", space["runtimes"])
    params: dict[str, Any] = {"runtime": runtime}
    choices = [p for p in space["precisions"] if p in PRECISIONS_OF_RUNTIME[runtime]] or ["fp32"]
    params["precision"] = trial.suggest_categorical(f"precision_{runtime}", choices)
    if space["decompose"] and trial.suggest_categorical("decompose", [False, True]):
        low, high = space["energy"]
        params["energy"] = trial.suggest_float("energy", low, high, step=STEP_ENERGY) if high > low else low
    if space["prune"] and trial.suggest_categorical("prune", [False, True]):
        low, high = space["macs_factor"]
        params["macs_factor"] = trial.suggest_float("macs_factor", low, high, step=STEP_MACS) if high > low else low
        params["importance"] = (trial.suggest_categorical("importance", space["importances"])
                                if len(space["importances"]) > 1 else space["importances"][0])
    return params


def candidate(params: dict[str, Any], space: dict) -> Candidate:
    """The overrides that make a pipeline run build exactly this point, and the name of the artifact it yields."""
    runtime, precision = params["runtime"], params["precision"]
    fmt = FORMAT_OF_RUNTIME[runtime]
    bits, _, method = precision.partition("-")
    recipe_set: dict[str, Any] = {"quantize.methods": [method] if method else [],
                                  "decompose.enabled": "energy" in params, "prune.enabled": "macs_factor" in params}
    # the pipeline's own compression gates then agree with the search's limit (they only change evaluate's key)
    recipe_set.update({f"{table}.max_accuracy_drop": space["max_accuracy_drop"]
                       for table in ("decompose", "prune", "quantize")})
    if "energy" in params:
        recipe_set.update({"decompose.energy": params["energy"], "decompose.macs_factor": 0.0})
    if "macs_factor" in params:
        recipe_set.update({"prune.macs_factor": params["macs_factor"], "prune.ratio": 0.0,
                           "prune.importance": params["importance"]})
    build = [f"{fmt}-fp32"] + ([f"{fmt}-{bits}"] if bits != "fp32" else [])
    name = artifact_name(fmt, bits, pruned="macs_factor" in params, quantization=method or "none",
                         lowrank="energy" in params)
    return Candidate(params, runtime, name, f"{fmt}-fp32", recipe_set, {"artifacts.build": build})


def trial_target_set(space: dict) -> dict[str, Any]:
    """What makes a trial affordable: a fixed evaluation slice and a short benchmark (the final run drops these)."""
    return {"validation.eval_samples": space["eval_samples"], "benchmark.runs": space["bench_runs"],
            "benchmark.min_rounds": space["bench_rounds"], "benchmark.max_rounds": space["bench_rounds"]}


def describe(params: dict[str, Any]) -> str:
    """One short line for tables: 'pte int8-ptq, lowrank 0.85, pruned 2.5x (l2)'."""
    parts = [f"{params['runtime']} {params['precision']}"]
    if "energy" in params:
        parts.append(f"lowrank {params['energy']:.2f}")
    if "macs_factor" in params:
        parts.append(f"pruned {params['macs_factor']:.2f}x ({params['importance']})")
    return ", ".join(parts)
