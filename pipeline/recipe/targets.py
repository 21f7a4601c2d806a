"""Targets (a device and how to reach it, `targets/NAME.toml`): their schema, and loading them validated."""

from __future__ import annotations

from typing import Any

from pipeline.core.names import HINT as NAME_HINT
from pipeline.core.names import is_safe_name
from pipeline.core.schema import Field, fraction, non_negative, positive, validate
from pipeline.recipe.config import Config
from pipeline.recipe.files import TARGETS_DIR, apply_overrides, read_toml, resolve

ARTIFACT_KINDS = ("onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8", "pte-fp32", "pte-int8")

TARGET_SCHEMA: dict = {
    "target": {
        "name": Field(str, check=is_safe_name, hint=NAME_HINT),
        "description": Field(str, ""),
    },
    "device": {
        "kind": Field(str, "host", choices=("host", "adb")),
        "serial": Field(str, ""),
        "abi": Field(str, ""),
        "emulated": Field(bool, False),
        "core_mask": Field(str, ""),
        "threads": Field(int, 1, check=positive, hint="> 0"),
        "runtimes": Field(list, list),
        "benchmark_binaries": Field(dict, dict, free_table=True),
    },
    "compute": {
        # torch threads for training and conversion here; 0: training picks 1 or every core, whichever it measures
        # faster as it goes (pipeline/training/thread_tuner.py), everything else runs on 1
        "threads": Field(int, 1, check=non_negative, hint=">= 0 (torch threads here; 0: training chooses)"),
        # independent child processes that run at once (onnx2tf conversions)
        "jobs": Field(int, 2, check=positive, hint="> 0 (conversions run at once)"),
    },
    "artifacts": {
        "build": Field(list, lambda: list(ARTIFACT_KINDS), choices=ARTIFACT_KINDS),
    },
    "validation": {
        "samples": Field(int, 0, check=non_negative, hint=">= 0 (0: whole test set)"),
        # the evaluate stage's slice of the evaluation set (search trials use a fixed slice); 0: the recipe's
        "eval_samples": Field(int, 0, check=non_negative, hint=">= 0 (0: the recipe's data.eval_samples)"),
        # on_device gate: the device's top-1 agreement with the host's outputs of the same artifact
        "min_host_agreement": Field(float, 0.98, check=fraction, hint="between 0 and 1"),
    },
    "benchmark": {
        "warmup": Field(int, 20, check=non_negative, hint=">= 0"),
        "runs": Field(int, 200, check=positive, hint="> 0"),
        "threads": Field(int, 1, check=positive, hint="> 0"),
        "cooldown_s": Field(float, 0.0, check=non_negative, hint=">= 0"),
        # host benchmark in interleaved rounds, each a fresh process per artifact: at least min_rounds, then more
        # until every speed-up's confidence interval is narrower than ci_rel_width of its ratio, or a limit is hit
        "min_rounds": Field(int, 3, check=positive, hint="> 0"),
        "max_rounds": Field(int, 10, check=positive, hint="> 0 (and >= min_rounds)"),
        "max_seconds": Field(float, 180.0, check=positive, hint="> 0 (no round beyond min_rounds starts after this)"),
        "ci_rel_width": Field(float, 0.1, check=positive, hint="> 0 (interval width / ratio)"),
    },
}



def load_target(name_or_path: str, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a target by name (targets/NAME.toml) or path, with optional dotted-key overrides."""
    path = resolve(name_or_path, TARGETS_DIR, "target")
    data = validate(apply_overrides(read_toml(path), overrides or {}, path), TARGET_SCHEMA, path)
    return Config(path, data["target"]["name"], data)
