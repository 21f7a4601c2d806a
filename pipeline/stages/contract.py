"""The stage contract: a function from upstream outputs (+ settings) to new artifacts and measurements.

A stage knows nothing about devices or other stages; the runner (pipeline/engine/runner.py) composes them, caches each
output under a hash of its inputs and settings, and records the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.artifacts.artifact import Artifact
from pipeline.recipe.loading import Config


@dataclass(frozen=True)
class StageOutput:
    """What a stage produced: model artifacts and JSON-able measurements."""

    artifacts: tuple[Artifact, ...] = ()
    data: dict = field(default_factory=dict)

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class Context:
    """Everything a stage may read: the recipe, the target, upstream outputs, and a fresh folder to write into."""

    recipe: Config
    target: Config
    inputs: dict[str, StageOutput]
    out_dir: Path
    threads: int
    log: logging.Logger
    options: dict = field(default_factory=dict)  # run options that do not change results (e.g. no_gates)

    def upstream_artifacts(self) -> list[Artifact]:
        return [a for out in self.inputs.values() for a in out.artifacts]


@dataclass(frozen=True)
class Stage:
    """A named step: which stages it reads, which settings change its result, and which tools it uses."""

    name: str
    produces: str  # one line for `pipeline stages`
    needs: tuple[str, ...]
    settings: Callable[[Config, Config], dict]
    run: Callable[[Context], StageOutput]
    tools: tuple[str, ...] = ()
    cached: bool = True  # False for cheap stages rebuilt every time (the report)
    trains: bool = False  # True where every torchrun process takes part (DistributedDataParallel training)
    # True: the runner starts it in a thread and goes on with the next stages; a stage that needs it waits for it.
    # Only for a stage whose work runs in child processes (no torch state shared with the stages beside it).
    background: bool = False
