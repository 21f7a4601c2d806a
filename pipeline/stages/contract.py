"""The stage contract: a function from upstream outputs (+ settings) to new artifacts and measurements.

A stage knows nothing about devices or other stages; the engine (pipeline/engine/runner.py) composes them, caches
each output under a hash of its inputs and settings, and records the manifest. A stage declares the recipe tables it
owns (`schema`), which settings change its result (`settings`) and, where it can tell before running, why it would
do nothing (`skip`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.artifacts.artifact import Artifact
from pipeline.recipe.config import Config


@dataclass(frozen=True)
class StageOutput:
    """What a stage produced: model artifacts and JSON-able measurements.

    Two keys of `data` carry meaning for the engine and the report, read through typed accessors: `skipped` (why
    the stage did nothing) and `gate_violations` (one line per failed gate)."""

    artifacts: tuple[Artifact, ...] = ()
    data: dict = field(default_factory=dict)

    @classmethod
    def skip(cls, reason: str) -> StageOutput:
        """The output of a stage that did nothing, saying why."""
        return cls((), {"skipped": reason})

    @property
    def skipped(self) -> str | None:
        return self.data.get("skipped")

    @property
    def gate_violations(self) -> tuple[str, ...]:
        return tuple(self.data.get("gate_violations", ()))

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class RunFlags:
    """The run's options a stage may read; none of them changes a result (they are not in any cache key)."""

    no_gates: bool = False
    force: bool = False  # every stage runs again
    from_stage: str | None = None  # this stage and every later one run again

    def reruns(self, stage: str, order: list[str]) -> bool:
        """Whether `--force` or `--from` asks `stage` (one of the names in run `order`) to run again."""
        return self.force or (self.from_stage is not None and order.index(stage) >= order.index(self.from_stage))


@dataclass(frozen=True)
class Context:
    """Everything a stage may read: the recipe, the target, upstream outputs, and a fresh folder to write into."""

    recipe: Config
    target: Config
    inputs: Mapping[str, StageOutput]
    out_dir: Path
    threads: int
    log: logging.Logger
    flags: RunFlags = RunFlags()
    manifest: Mapping | None = None  # the run's manifest so far: only the report stage, rebuilt every run, reads it

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
    # The recipe tables this stage owns ({"prune": {key: Field}}): the recipe schema is assembled from the stages
    # (pipeline/engine/recipes.py), so a stage's cache key holds its own schema and no other table's.
    schema: dict = field(default_factory=dict)
    # Why the stage will do nothing for this recipe and target (it records that reason), or None; the plan shows it.
    skip: Callable[[Config, Config], str | None] = lambda recipe, target: None
