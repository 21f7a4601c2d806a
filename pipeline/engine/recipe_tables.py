"""The recipe tables that no stage owns: what the recipe is (`recipe`, `model`, `input`, `weights`, `data`) and the
settings of the `search` tool. Each stage declares its own tables (`Stage.schema`); pipeline/engine/recipes.py
assembles the whole recipe schema from both.
"""

from __future__ import annotations

from pipeline import data
from pipeline.compression.pruning import IMPORTANCES
from pipeline.core.names import HINT as NAME_HINT
from pipeline.core.names import is_safe_name
from pipeline.core.schema import SEED_LIMIT, Field, non_negative, number_range, numbers, positive, seed
from pipeline.models.sources import SOURCE_NAMES

SEARCH_RUNTIMES = ("tflite", "executorch")
SEARCH_PRECISIONS = ("fp32", "fp16", "int8-ptq", "int8-qat")
SEED_HINT = "0 to 2^32 - 1"


def _input_names(value: list) -> bool:
    return all(isinstance(v, str) and v.isprintable() and 0 < len(v) <= 100 for v in value) and \
        len(set(value)) == len(value)

COMMON: dict = {
    "recipe": {
        "name": Field(str, check=is_safe_name, hint=NAME_HINT),
        "version": Field(str, "0.1.0", check=is_safe_name, hint=NAME_HINT),
        "description": Field(str, ""),
    },
    "model": {  # pipeline/models/sources/: one file per source
        "source": Field(str, "registry", choices=SOURCE_NAMES),
        "arch": Field(str, ""),  # registry: a bundled architecture; package: the package's builder name
        "package": Field(str, ""),  # package: e.g. "geffnet"
        "entry": Field(str, ""),  # python: "path/to/file.py:build_fn" or "package.module:build_fn"
        "path": Field(str, ""),  # onnx / tflite: the model file
        "settings": Field(dict, dict, free_table=True),  # keyword arguments of the builder
    },
    "input": {  # 0 or []: taken from the model file or the dataset (pipeline/recipe/inputs.py)
        "height": Field(int, 0, check=non_negative, hint=">= 0 (0: from the model file or the data)"),
        "width": Field(int, 0, check=non_negative, hint=">= 0 (0: from the model file or the data)"),
        "channels": Field(int, 0, choices=(0, 1, 3)),
        "mean": Field(list, list, check=numbers, hint="a list of numbers, one per channel (or one for all)"),
        "std": Field(list, list, check=numbers, hint="a list of numbers, one per channel (or one for all)"),
        "range": Field(str, "0-1", choices=("0-1", "0-255")),
    },
    "weights": {
        "source": Field(str, "train", choices=("train", "state_dict", "pretrained")),
        "path": Field(str, ""),
    },
    "data": {
        "dataset": Field(str, "fashion-mnist", choices=data.DATASETS),
        "path": Field(str, ""),  # image-folder: class sub-folders; arrays: a folder of .npy files or an .npz
        "train": Field(str, ""),  # arrays: the training part (a folder or .npz), with val
        "val": Field(str, ""),  # arrays: the evaluation part, with train
        "entry": Field(str, ""),  # python: "my_data.py:load" returning (train, val) iterables of (inputs, target)
        "inputs": Field(list, list, check=_input_names, hint="a list of distinct array names"),  # arrays, python
        "val_fraction": Field(float, 0.2, check=lambda v: 0.0 < v < 1.0, hint="between 0 and 1"),
        "split_seed": Field(int, 0, check=seed, hint=SEED_HINT),
        "eval_samples": Field(int, 0, check=non_negative, hint=">= 0 (0: the whole test set)"),
        "calibration_samples": Field(int, 200, check=positive, hint="> 0"),
    },
}

TOOL_TABLES: dict = {  # settings of the tools that run the pipeline (phone-pipeline search)
    "search": {  # `phone-pipeline search`: compression settings chosen by latency measured on the target
        "trials": Field(int, 12, check=positive, hint="> 0"),
        "runtimes": Field(list, lambda: list(SEARCH_RUNTIMES), choices=SEARCH_RUNTIMES),
        "precisions": Field(list, lambda: list(SEARCH_PRECISIONS), choices=SEARCH_PRECISIONS),
        "prune": Field(bool, True),  # search pruning on/off and its macs_factor
        "macs_factor": Field(list, lambda: [1.5, 4.0], check=number_range(1.0), hint="[low, high], both >= 1"),
        "importances": Field(list, lambda: ["l2"], choices=IMPORTANCES),
        "decompose": Field(bool, True),  # search low-rank decomposition on/off and its energy
        "energy": Field(list, lambda: [0.7, 0.95], check=number_range(0.0, 1.0), hint="[low, high] within (0, 1]"),
        "eval_samples": Field(int, 2000, check=non_negative, hint=">= 0 (0: the whole test set)"),
        "bench_runs": Field(int, 50, check=positive, hint="> 0 (timed runs per round in a trial)"),
        "bench_rounds": Field(int, 2, check=positive, hint="> 0 (rounds per trial)"),
        "max_latency_ms": Field(float, 0.0, check=non_negative, hint=">= 0 (0: no budget)"),
        "min_speedup": Field(float, 0.0, check=non_negative, hint=">= 0 (0: none), over fp32 of the same runtime"),
        "max_accuracy_drop": Field(float, 1.0, check=non_negative, hint=">= 0 (points against the fp32 model)"),
        "sampler": Field(str, "tpe", choices=("tpe", "nsga2")),
        "seed": Field(int, 0, check=seed, hint=f"in [0, {SEED_LIMIT})"),
        "heartbeat_seconds": Field(int, 10, check=positive, hint="> 0 (a trial silent 3x this long was killed)"),
    },
}
