"""What a run gives back to Python: its artifacts with their measured numbers, the report, and the choice of one.

Everything is read from the run folder's report.json, the same document the report page shows, so a `Run` can be
opened again later from its folder (`Run(Path("build/runs/x__host"))`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class ArtifactResult:
    """One artifact of a run and what was measured on it (None where the run did not measure it)."""

    name: str
    path: Path
    format: str
    precision: str
    runtime: str | None
    size_bytes: int
    accuracy: float | None  # the task metric on the evaluation split (None without labels)
    top1_agreement: float | None  # with its reference (`reference`)
    max_abs_diff: float | None
    reference: str | None
    p50_ms: float | None
    p90_ms: float | None
    speedup: float | None  # over the fp32 artifact of the same runtime
    speedup_interval: tuple[float, float] | None
    gate: str  # pass, fail or not evaluated
    metadata: dict = field(repr=False, default_factory=dict)  # the report's whole row

    @classmethod
    def from_row(cls, row: dict) -> ArtifactResult:
        lat, s = row.get("latency_ms") or {}, row.get("speedup") or {}
        return cls(row["name"], Path(row["path"]), row["format"], row["precision"], row.get("runtime"),
                   row["size_bytes"], row.get("accuracy"), row.get("top1_agreement"), row.get("max_abs_diff"),
                   row.get("reference"), lat.get("p50"), lat.get("p90"), s.get("ratio"),
                   (s["ci_low"], s["ci_high"]) if "ci_low" in s else None, row.get("gate", "not evaluated"), row)


class Run:
    """A finished run: `folder`, `report` (report.json as a dict), `artifacts` by name.

    >>> run = Run(Path("build/runs/fashion-mnist-mobilenetv2__host"))   # doctest: +SKIP
    >>> run.best(max_drop=1.0).name                                     # doctest: +SKIP
    'tflite-pruned-int8-qat'
    """

    def __init__(self, folder: Path, recipe: Path | None = None):
        self.folder = Path(folder)
        # the recipe file the run was made from, known when this process made it; a folder opened later is data
        # from outside, whose recorded recipe path is never loaded (debug and profile then ask for it)
        self.recipe = recipe
        path = self.folder / "report.json"
        if not path.is_file():
            raise PipelineError(f"{self.folder}: no report.json here; give a run folder the pipeline finished",
                                file=str(self.folder))
        self.report: dict = json.loads(path.read_text())
        self.artifacts: dict[str, ArtifactResult] = {r["name"]: ArtifactResult.from_row(r)
                                                     for r in self.report["artifacts"]}

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, {len(self.artifacts)} artifacts)"

    def baseline_accuracy(self) -> float | None:
        """The fp32 PyTorch model's accuracy, the one every drop is measured from."""
        base = self.artifacts.get("torch-fp32")
        return base.accuracy if base else None

    def best(self, max_drop: float = 1.0, runtime: str | None = None) -> ArtifactResult | None:
        """The fastest artifact (lowest p50) that passed its gates and lost at most `max_drop` accuracy points
        against the fp32 model, optionally in one runtime ('litert', 'executorch', 'onnxruntime', 'torch')."""
        base = self.baseline_accuracy()
        fits = [a for a in self.artifacts.values()
                if a.gate == "pass" and a.p50_ms is not None and (runtime is None or a.runtime == runtime)
                and (base is None or a.accuracy is None or 100 * (base - a.accuracy) <= max_drop)]
        return min(fits, key=lambda a: (a.p50_ms, a.size_bytes, a.name), default=None)

    def table(self) -> str:
        """The artifacts as a plain-text table: accuracy, agreement with the reference, p50, speed-up, size."""
        lines = [f"{'artifact':28} {'runtime':12} {'accuracy':>8} {'agree':>7} {'p50 ms':>9} {'speed-up':>9} "
                 f"{'KB':>8}  gate"]
        for a in self.artifacts.values():
            lines.append(f"{a.name:28} {a.runtime or '-':12} {_num(a.accuracy, '.4f'):>8} "
                         f"{_num(a.top1_agreement, '.4f'):>7} {_num(a.p50_ms, '.3f'):>9} "
                         f"{_num(a.speedup, '.2f', 'x'):>9} {a.size_bytes / 1024:8.0f}  {a.gate}")
        return "\n".join(lines)

    def to_pandas(self):
        """The artifacts as a pandas DataFrame, one row each (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise PipelineError("to_pandas needs pandas; install it, or use run.table() or run.artifacts") from None
        rows = [{k: v for k, v in vars(a).items() if k != "metadata"} for a in self.artifacts.values()]
        return pd.DataFrame(rows).set_index("name")

    def show(self) -> None:
        """The report page: rendered Markdown and the plot in a notebook, plain text elsewhere."""
        text = (self.folder / "report.md").read_text()
        try:
            from IPython import get_ipython
            from IPython.display import Image, Markdown, display
        except ImportError:
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(Markdown(text))
            if (self.folder / "report.png").is_file():
                display(Image(filename=str(self.folder / "report.png")))
        else:
            print(text)


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


class Search:
    """A finished search: `folder`, `document` (search.json), `trials`, `front` (trial numbers on the Pareto
    front), `choice` (the chosen trial's record, or None), `why` (the reason for it) and `run` (the chosen trial's
    final run on the whole test set)."""

    def __init__(self, folder: Path, recipe: Path | None = None, target: Path | None = None):
        self.folder, self.recipe, self.target = Path(folder), recipe, target
        self.document: dict = json.loads((self.folder / "search.json").read_text())
        self.trials: list[dict] = self.document.get("trials", [])
        self.front: list[int] = self.document.get("front", [])
        chosen = self.document.get("chosen")
        self.choice: dict | None = next((t for t in self.trials if t.get("number") == chosen), None)
        self.why: str = self.document.get("why", "")

    def __repr__(self) -> str:
        return f"Search({str(self.folder)!r}, {len(self.trials)} trials)"

    @property
    def run(self) -> Run | None:
        final = (self.document.get("final") or {}).get("run_dir")
        return Run(Path(final)) if final and (Path(final) / "report.json").is_file() else None
