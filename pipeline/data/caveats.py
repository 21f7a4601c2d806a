"""Warnings about what a run's numbers rest on: a split smaller than the settings ask for (calibration, evaluation,
training), and an fp32 accuracy within noise of chance.

Each check logs its lines at WARNING and returns them; the stage that calls it keeps them in its output under
`warnings`, so the report (pipeline/report/run_report.py) shows them whether the stage ran or came from the cache.

    >>> at_chance(0.3333, classes=3, samples=3)[0][:60]
    "the fp32 model's accuracy 0.3333 on 3 evaluation samples is "
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.recipe.config import Config

MIN_EVAL_SAMPLES = 30  # below this an accuracy's 95% interval is wider than about +-18 points
Z95 = 1.96  # two-sided 95% normal quantile: the binomial margins below
log = logging.getLogger("pipeline.data")


def _said(lines: list[str]) -> list[str]:
    for line in lines:
        log.warning("%s", line)
    return lines


def margin(samples: int, p: float = 0.5) -> float:
    """Half-width of the 95% normal interval of a proportion `p` measured on `samples` (p = 0.5: the widest)."""
    return Z95 * math.sqrt(p * (1 - p) / samples) if samples else 1.0


def wilson(p: float, samples: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion `p` measured on `samples` (sound at 0, 1 and small counts)."""
    z2n = Z95 * Z95 / samples
    centre = (p + z2n / 2) / (1 + z2n)
    half = Z95 * math.sqrt(p * (1 - p) / samples + z2n / (4 * samples)) / (1 + z2n)
    return max(0.0, centre - half), min(1.0, centre + half)


def calibration(recipe: Config, got: int, used: bool = True) -> list[str]:
    """A warning when int8 calibration (`used`: it is) got fewer samples than data.calibration_samples asks for."""
    from pipeline.data import has_train

    asked = recipe.data["data"]["calibration_samples"]
    if got >= asked or not used:
        return []
    split = "training" if has_train(recipe) else "evaluation"
    return _said([f"data.calibration_samples asks for {asked} calibration samples but the {split} split holds {got}: "
                  f"int8 calibration used {got}; add data or set data.calibration_samples = {got} to say so"])


def training(recipe: Config, got: int) -> list[str]:
    """Warnings when the training split is smaller than train.max_train_samples or one batch."""
    table, lines = recipe.data["train"], []
    if table["max_train_samples"] and got < table["max_train_samples"]:
        lines.append(f"train.max_train_samples asks for {table['max_train_samples']} training samples but the "
                     f"training split holds {got}")
    if got < table["batch_size"]:
        steps = max(1, round(table["epochs"]))  # one (partial) batch per epoch
        lines.append(f"train.batch_size {table['batch_size']} is more than the {got} training samples: training "
                     f"takes {steps} optimiser step(s) in all (train.epochs {table['epochs']:g}); add data or "
                     "lower train.batch_size")
    return _said(lines)


def _eval_limit(recipe: Config, target: Config) -> tuple[int, str]:
    """The evaluation sample count asked for (0: all) and the key that asked for it (the smaller limit wins)."""
    limits = [(n, key) for n, key in ((recipe.data["data"]["eval_samples"], "data.eval_samples"),
                                      (target.data["validation"]["eval_samples"],
                                       f"the target's validation.eval_samples ({target.path.name})")) if n]
    return min(limits, default=(0, ""))


def evaluation(recipe: Config, target: Config, samples: int, fp32_accuracy: float | None) -> list[str]:
    """Warnings on an evaluation: fewer samples than asked for, too few to trust an accuracy (with its 95% interval),
    and an fp32 accuracy within noise of chance."""
    from pipeline.data import label_names

    asked, key = _eval_limit(recipe, target)
    lines = []
    if asked and samples < asked:
        lines.append(f"{key} asks for {asked} evaluation samples but the evaluation split holds {samples}: "
                     f"every accuracy was measured on {samples}")
    if samples < MIN_EVAL_SAMPLES:
        if fp32_accuracy is None:
            how = f"agreement by up to +-{100 * margin(samples):.0f} points at 95%"
        else:
            low, high = wilson(fp32_accuracy, samples)
            how = f"the fp32 accuracy {fp32_accuracy:.4f} may be anywhere from {low:.2f} to {high:.2f} (95% interval)"
        lines.append(f"only {samples} evaluation samples (fewer than {MIN_EVAL_SAMPLES}): accuracies are uncertain, "
                     f"{how}; add evaluation data")
    if fp32_accuracy is not None:
        lines += at_chance(fp32_accuracy, len(label_names(recipe)), samples)
    return _said(lines)


def at_chance(accuracy: float, classes: int, samples: int) -> list[str]:
    """A line when `accuracy` is not above chance (1 / classes) by more than the binomial 95% margin for `samples`
    (not logged: `evaluation` logs it)."""
    if classes < 2 or not samples:
        return []
    chance = 1 / classes
    noise = margin(samples, chance)
    if accuracy > chance + noise:
        return []
    where = "below" if accuracy < chance - noise else "within noise of"
    return [f"the fp32 model's accuracy {accuracy:.4f} on {samples} evaluation samples is {where} chance "
            f"({chance:.4f} for {classes} classes, +-{noise:.4f} at 95%): it may have learned nothing; check the "
            "labels, [input], [train] (epochs, lr) and how much data there is"]
