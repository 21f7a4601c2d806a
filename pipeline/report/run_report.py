"""Reports built from the run manifest alone: report.json (stable schema), report.md and a Pareto plot PNG.

`pipeline report RUN_DIR` rebuilds them without rerunning anything.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes, atomic_write_json
from pipeline.artifacts.manifest import artifacts, stage_data
from pipeline.artifacts.manifest import load as load_manifest
from pipeline.core import figure
from pipeline.core.errors import UserError
from pipeline.report import devices_section as report_devices
from pipeline.report import int8_payoff

SCHEMA = "phone-pipeline/report/1"


def build(manifest: dict) -> dict:
    """The report.json document (see README, 'report.json schema')."""
    metrics = stage_data(manifest, "evaluate").get("metrics", {})
    violations = stage_data(manifest, "evaluate").get("gate_violations", [])
    device_violations = stage_data(manifest, "on_device").get("gate_violations", [])
    bench = stage_data(manifest, "benchmark")
    device = manifest["target"]["name"]
    rows = []
    for art in artifacts(manifest).values():
        if art.get("role", "model") != "model":
            continue  # conversion inputs (e.g. the QAT-tuned float model) are in the manifest, not measured
        m = metrics.get(art["name"], {})
        b = bench.get("results", {}).get(art["name"], {})
        lat = b.get("latency_ms")
        own = [v for v in violations if v.startswith(art["name"] + ":")]
        rows.append({
            "name": art["name"],
            "format": art["format"],
            "precision": art["precision"],
            "path": art["path"],
            "sha256": art["sha256"],
            "size_bytes": art["size_bytes"],
            "device": bench.get("device") or device,  # evaluate and benchmark run on the host
            "runtime": m.get("runtime") or b.get("runtime"),
            "layout": art["layout"],
            "input_shape": art["input_shape"],
            "inputs": art.get("inputs") or None,
            "outputs": art.get("outputs") or None,
            "accuracy": m.get("accuracy"),  # the task metric's value (evaluation.metric names it)
            "top1_agreement": m.get("top1_agreement"),
            "max_abs_diff": m.get("max_abs_diff"),
            "sqnr_db": m.get("sqnr_db"),
            "cosine": m.get("cosine"),
            "output_fidelity": m.get("outputs"),
            "against_fp32": m.get("against_fp32"),
            "mean_abs_diff": m.get("mean_abs_diff"),
            "accuracy_delta": m.get("accuracy_delta"),
            "reference": m.get("reference"),
            "pruned": bool(art.get("pruned", False)),
            "lowrank": bool(art.get("lowrank", False)),
            "params": art.get("params"),
            "macs": art.get("macs"),
            "quantization": art.get("quantization", "none"),
            "quantized_by": art.get("extra", {}).get("quantized_by"),
            "accuracy_drop": m.get("accuracy_drop"),
            "latency_ms": None if lat is None else {k: lat[k] for k in ("p50", "p90", "p99", "mean", "std", "cv")},
            "prepare_p50_ms": (b.get("prepare_ms") or {}).get("p50"),
            "rounds": len(b.get("rounds", [])) or None,
            "round_p50_ms": [r["p50"] for r in b.get("rounds", [])] or None,
            "min_ms": min((r["min"] for r in b.get("rounds", [])), default=None),
            "speedup": b.get("speedup"),
            "load_ms": b.get("load_ms"),
            "peak_rss_mb": b.get("peak_rss_mb"),
            "threads": b.get("threads"),
            "gate": "fail" if own else ("pass" if m else "not evaluated"),
            "violations": own,
            "tools": art.get("tools", {}),
        })
    return {
        "schema": SCHEMA,
        "created": manifest["created"],
        "recipe": {"name": manifest["recipe"]["name"], "version": manifest["recipe"]["settings"]["recipe"]["version"],
                   "path": manifest["recipe"]["path"], "sha256": manifest["recipe"]["sha256"]},
        "target": {"name": device, "path": manifest["target"]["path"]},
        "host": manifest["host"],
        "tools": manifest["tools"],
        "model": _model(manifest),
        "evaluation": {"samples": stage_data(manifest, "evaluate").get("samples"),
                       "metric": stage_data(manifest, "evaluate").get("metric"),
                       "outputs": stage_data(manifest, "evaluate").get("outputs"),
                       "fp32_accuracy": stage_data(manifest, "evaluate").get("fp32_accuracy"),
                       "labelled": stage_data(manifest, "evaluate").get("labelled"),
                       "threads": stage_data(manifest, "evaluate").get("threads")},
        "benchmark": {"settings": bench.get("settings"), "device": bench.get("device") or device,
                      "rounds": bench.get("rounds"), "stopped": bench.get("stopped"), "machine": bench.get("machine"),
                      "not_timed": bench.get("not_timed") or {}},
        "gates": {"enforced": not manifest["options"]["no_gates"], "violations": violations + device_violations},
        "warnings": stage_warnings(manifest),
        "artifacts": rows,
        "int8_not_paying": int8_payoff.not_paying(rows),
        "pruning": _pruning(manifest),
        "decomposition": _decomposition(manifest),
        "on_device": report_devices.rows(manifest),
        # the report stage cannot time itself: leaving it out keeps a rebuilt report identical to the original
        "stages": [{"name": r["name"], "cached": r["cached"], "seconds": r["seconds"],
                    "skipped": r.get("data", {}).get("skipped")} for r in manifest["stages"] if r["name"] != "report"],
    }


def stage_warnings(manifest: dict) -> list[str]:
    """What the stages warned of (a split smaller than the settings ask for, an accuracy at chance: see
    pipeline/data/caveats.py), each line once, in stage order."""
    found: list[str] = []
    for rec in manifest["stages"]:
        found += [w for w in rec.get("data", {}).get("warnings") or [] if w not in found]
    return found


def _pruning(manifest: dict) -> dict | None:
    """Totals and per-layer widths before and after pruning (null when the recipe does not prune)."""
    d = stage_data(manifest, "prune")
    if "layers" not in d:
        return None
    keys = ("before", "after", "macs_reduction", "params_reduction", "steps", "target", "reached", "layers",
            "accuracy_before_finetune", "accuracy", "left_unpruned")
    return {k: d.get(k) for k in keys}


def _decomposition(manifest: dict) -> dict | None:
    """Energy, per-layer ranks, MACs and params before and after factorising (null when the recipe does not)."""
    d = stage_data(manifest, "decompose")
    if "layers" not in d:
        return None
    keys = ("energy", "before", "after", "macs_reduction", "layers", "left_as_is", "accuracy_before_finetune",
            "accuracy")
    return {k: d.get(k) for k in keys}


def _model(manifest: dict) -> dict:
    """Where the network and the data came from and what input the model takes (from the recipe as loaded)."""
    settings = manifest["recipe"]["settings"]
    spec = settings.get("model_spec", {})
    train = stage_data(manifest, "train")
    data = settings["data"]
    return {"source": spec.get("source"), "description": train.get("model") or spec.get("arch") or spec.get("path"),
            "dataset": data["dataset"], "data_path": data.get("path") or None, "input": settings.get("input"),
            "data_read": train.get("data")}


def _model_lines(m: dict) -> list[str]:
    if not m.get("source"):
        return []
    i = m.get("input") or {}
    data = f"`{m['dataset']}`" + (f" from {m['data_path']}" if m.get("data_path") else "")
    lines = [f"Model: {m['description']} (model.source = {m['source']}); data: {data}; input "
             f"{i.get('height')}x{i.get('width')}x{i.get('channels')}, mean {i.get('mean')}, std {i.get('std')}."]
    read = m.get("data_read") or {}
    if read.get("skipped_count"):
        lines.append(f"Skipped {read['skipped_count']} unreadable picture(s): {', '.join(read['skipped'][:5])}.")
    return lines


def _warning_lines(warnings: list[str]) -> list[str]:
    if not warnings:
        return []
    return ["**Warnings** (what the numbers below rest on):", "", *[f"- **{w}**" for w in warnings], ""]


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(rep: dict) -> str:
    """A human-readable report with what was run, on which runtime and device, with which settings."""
    b = rep["benchmark"]["settings"] or {}
    h = rep["host"]
    lines = [
        f"# {rep['recipe']['name']} {rep['recipe']['version']} on {rep['target']['name']}",
        "",
        f"Created {rep['created']} on {h['processor']} ({h['cpu_count']} cores, {h['system']}), Python {h['python']}.",
        *_model_lines(rep.get("model") or {}),
        f"Evaluation: {rep['evaluation']['samples']} samples, {rep['evaluation']['threads']} thread(s). "
        f"Benchmark: {b.get('warmup', '-')} warm-up + {b.get('runs', '-')} timed runs per artifact and round, "
        f"{b.get('threads', '-')} thread(s), batch 1, each runtime in a fresh process, on the host CPU; "
        f"{_rounds_line(rep['benchmark'])}",
        "",
        *_warning_lines(rep.get("warnings") or []),
        f"| artifact | runtime | precision | size KB | {metric_name(rep)} | agreement | SQNR dB | max abs diff | "
        "vs fp32 model | p50 ms | p90 ms | p99 ms | cv | prepare ms | load ms | peak RSS MB | gate |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for a in rep["artifacts"]:
        lat = a["latency_ms"] or {}
        lines.append(
            f"| {a['name']} | {a['runtime'] or '-'} | {a['precision']} | {a['size_bytes'] / 1024:.1f} | "
            f"{_fmt(a['accuracy'], '.4f')} | {_fmt(a['top1_agreement'], '.4f')} | {_fmt(a.get('sqnr_db'), '.1f')} | "
            f"{_fmt(a['max_abs_diff'], '.2e')} | {_against_fp32(a.get('against_fp32'))} | "
            f"{_fmt(lat.get('p50'), '.3f')} | {_fmt(lat.get('p90'), '.3f')} | {_fmt(lat.get('p99'), '.3f')} | "
            f"{_fmt(lat.get('cv'), '.2f')} | {_fmt(a.get('prepare_p50_ms'), '.3f')} | {_fmt(a['load_ms'], '.0f')} | "
            f"{_fmt(a['peak_rss_mb'], '.0f')} | {a['gate']} |")
    lines += ["", "Agreement (top-1 of the first output, where it holds class scores), SQNR (the lowest over the "
              "outputs) and max abs diff (the largest): against the artifact's reference (the PyTorch model it was "
              "made from; for int8 .pte files the PyTorch quantized reference; for int8 TFLite files the float model "
              "onnx2tf calibrated). vs fp32 model: top-1 agreement and SQNR against the fp32 PyTorch model of the "
              "same architecture, which shows what int8 lost even where its reference lost it too. "
              "p50/p90/p99/cv: the runtime's invoke alone, from the round with the median p50. "
              "Prepare: our own input layout change and int8 quantization plus output dequantization (p50), which "
              "an app pays once per frame on top. Peak RSS includes the runtime's own libraries (torch for "
              "ExecuTorch's Python bindings).", ""]
    lines += [f"Not timed: `{name}`, {why}." for name, why in rep["benchmark"].get("not_timed", {}).items()]
    lines += [""] if rep["benchmark"].get("not_timed") else []
    lines += output_table(rep)
    lines += speedup_table(rep)
    found = rep["int8_not_paying"] if "int8_not_paying" in rep else int8_payoff.not_paying(rep["artifacts"])
    lines += int8_payoff.markdown(found)
    lines += compression_table(rep)
    lines += report_devices.markdown(rep.get("on_device", []))
    if rep["gates"]["violations"]:
        state = "enforced" if rep["gates"]["enforced"] else "NOT enforced (--no-gates)"
        lines += [f"## Gate violations ({state})", ""] + [f"- {v}" for v in rep["gates"]["violations"]] + [""]
    lines += _debug_lines(rep)
    lines += ["## Stages", "", "| stage | cached | seconds | note |", "|---|---|---:|---|"]
    lines += [f"| {s['name']} | {'yes' if s['cached'] else 'no'} | {s['seconds']:.1f} | "
              f"{'skipped: ' + s['skipped'] if s.get('skipped') else ''} |" for s in rep["stages"]]
    lines += ["", "## Artifacts", ""]
    lines += [f"- `{a['name']}`: `{a['path']}` sha256 `{a['sha256']}`, input {a['layout']} {a['input_shape']}"
              for a in rep["artifacts"]]
    tools = ", ".join(f"{k} {v}" for k, v in sorted(rep["tools"].items()))
    lines += ["", f"Tools: {tools}.", "", "![accuracy against latency](report.png)", ""]
    return "\n".join(lines)


def _rounds_line(bench: dict) -> str:
    """How many rounds ran, why they stopped, and the machine's load, with its warnings."""
    if not bench.get("rounds"):
        return "one round."
    m = bench.get("machine") or {}
    steal = m.get("steal_fraction")
    text = (f"{bench['rounds']} interleaved round(s) (stopped: {bench['stopped']}); load average "
            f"{_fmt(m.get('load1_before'), '.1f')} -> {_fmt(m.get('load1_after'), '.1f')} (max "
            f"{_fmt(m.get('load1_max'), '.1f')}) on {m.get('cpu_count', '-')} cores, CPU steal "
            f"{'-' if steal is None else format(100 * steal, '.1f') + '%'}.")
    return text + "".join(f" **Warning: {w}.**" for w in m.get("warnings", []))


def speedup_table(rep: dict) -> list[str]:
    """Each artifact's speed-up over the fp32 artifact of its runtime, with the bootstrap interval over rounds."""
    rows = [a for a in rep["artifacts"] if a.get("speedup")]
    if not rows:
        return []
    conf = rows[0]["speedup"]["confidence"]
    lines = ["## Speed-up against fp32 of the same runtime", "",
             f"Ratio of median p50s over {rep['benchmark'].get('rounds')} rounds, with a {100 * conf:.0f}% bootstrap "
             "interval (rounds resampled in pairs). Per-round p50s show the spread; min is the fastest run seen.", "",
             "| artifact | baseline | p50 ms | baseline p50 ms | speed-up | interval | round p50s ms | min ms |",
             "|---|---|---:|---:|---:|---|---|---:|"]
    by_name = {a["name"]: a for a in rep["artifacts"]}
    for a in rows:
        s, base = a["speedup"], by_name.get(a["speedup"]["baseline"], {})
        spread = ", ".join(f"{v:.3f}" for v in a.get("round_p50_ms") or [])
        lines.append(f"| {a['name']} | {s['baseline']} | {_fmt((a['latency_ms'] or {}).get('p50'), '.3f')} | "
                     f"{_fmt((base.get('latency_ms') or {}).get('p50'), '.3f')} | {s['ratio']:.2f}x | "
                     f"{s['ci_low']:.2f}-{s['ci_high']:.2f}x | {spread} | {_fmt(a.get('min_ms'), '.3f')} |")
    return lines + [""]


def metric_name(rep: dict) -> str:
    """The task metric's name as the report's columns say it ("accuracy" for top-1)."""
    m = (rep["evaluation"].get("metric") or {}).get("name")
    return "accuracy" if m in (None, "top1") else m


def _against_fp32(a: dict | None) -> str:
    if not a:
        return "-"
    agreement = f"{a['top1_agreement']:.4f}, " if "top1_agreement" in a else ""
    return f"{agreement}{_fmt(a.get('sqnr_db'), '.1f')} dB ({a['source']})"


def output_table(rep: dict) -> list[str]:
    """Every output of every artifact against its reference, for models with more than one output."""
    names = rep["evaluation"].get("outputs") or []
    if len(names) < 2:
        return []
    lines = ["## Outputs", "", "Each output against the artifact's reference: SQNR dB / cosine / max abs error.", "",
             "| artifact | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in rep["artifacts"]:
        per = a.get("output_fidelity") or {}
        cells = [f"{_fmt(per[n]['sqnr_db'], '.1f')} / {_fmt(per[n]['cosine'], '.5f')} / "
                 f"{_fmt(per[n]['max_abs_error'], '.2e')}" if n in per else "-" for n in names]
        lines.append(f"| {a['name']} | " + " | ".join(cells) + " |")
    return lines + [""]


def compression_table(rep: dict) -> list[str]:
    """Parameters, MACs, size, accuracy, drop against the fp32 model and host p50 per artifact, and how each int8
    artifact was quantized."""
    rows = rep["artifacts"]
    if not any(r["pruned"] or r.get("lowrank") or r["quantization"] != "none" for r in rows):
        return []
    metric = rep["evaluation"].get("metric") or {}
    unit = metric.get("unit", "points")
    lines = ["## Compression", "", f"Drop: {metric_name(rep)} lost against the PyTorch fp32 model "
             f"({_fmt(rep['evaluation'].get('fp32_accuracy'), '.4f')}), in {unit}.", "",
             f"| artifact | low-rank | pruned | quantization | params | MACs | size KB | {metric_name(rep)} | "
             f"drop ({unit}) | p50 ms |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lat = r["latency_ms"] or {}
        lines.append(f"| {r['name']} | {'yes' if r.get('lowrank') else 'no'} | {'yes' if r['pruned'] else 'no'} | "
                     f"{r['quantization']} | "
                     f"{_fmt(r['params'], ',d')} | {_fmt(r['macs'], ',d')} | {r['size_bytes'] / 1024:.1f} | "
                     f"{_fmt(r['accuracy'], '.4f')} | {_fmt(r['accuracy_drop'], '.2f')} | "
                     f"{_fmt(lat.get('p50'), '.3f')} |")
    how = [f"- `{r['name']}`: {r['quantized_by']}" for r in rows if r["quantized_by"]]
    if how:
        lines += ["", "How each int8 artifact was quantized:", "", *how]
    return lines + [""] + decomposition_table(rep) + pruning_table(rep.get("pruning"))


def lowrank_pairs(rep: dict) -> list[tuple[dict, dict]]:
    """(factorised artifact, the same artifact without factorising) pairs that were both benchmarked."""
    def twin_key(r: dict, lowrank: bool) -> tuple:
        return (r["format"], r["precision"], r["pruned"], r["quantization"], lowrank)

    plain = {twin_key(r, False): r for r in rep["artifacts"] if not r.get("lowrank") and r["latency_ms"]}
    return [(r, plain[twin_key(r, False)]) for r in rep["artifacts"]
            if r.get("lowrank") and r["latency_ms"] and twin_key(r, False) in plain]


def decomposition_table(rep: dict) -> list[str]:
    """Per-layer ranks, MACs and params, and whether fewer MACs turned into measured speed on this target."""
    d = rep.get("decomposition")
    if not d:
        return []
    lines = ["### Low-rank decomposition per layer", "",
             f"Energy {d['energy']:.3f}: MACs {d['before']['macs']:,} -> {d['after']['macs']:,} "
             f"({d['macs_reduction']:.2f}x fewer), parameters {d['before']['params']:,} -> {d['after']['params']:,}; "
             f"accuracy right after factorising {_fmt(d.get('accuracy_before_finetune'), '.4f')}, after the distilled "
             f"fine-tune {_fmt(d.get('accuracy'), '.4f')}.", ""]
    pairs = lowrank_pairs(rep)
    if pairs:
        lines += [f"Measured on {rep['benchmark'].get('device') or rep['target']['name']} (p50, batch 1): does it pay?",
                  "", "| factorised | p50 ms | same without factorising | p50 ms | ratio |", "|---|---:|---|---:|---:|"]
        for low, base in pairs:
            ratio = base["latency_ms"]["p50"] / low["latency_ms"]["p50"]
            lines.append(f"| {low['name']} | {low['latency_ms']['p50']:.3f} | {base['name']} | "
                         f"{base['latency_ms']['p50']:.3f} | {ratio:.2f}x {'faster' if ratio > 1 else 'slower'} |")
        lines.append("")
    lines += ["| layer | kind | shape | ranks | MACs before | after | params before | after |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for r in d["layers"]:
        lines.append(f"| {r['layer']} | {r['kind']} | {'x'.join(map(str, r['shape']))} | "
                     f"{', '.join(map(str, r['ranks']))} | {r['macs_before']:,} | {r['macs_after']:,} | "
                     f"{r['params_before']:,} | {r['params_after']:,} |")
    left = d.get("left_as_is") or []
    if left:
        lines += ["", f"Left as they are ({len(left)}): " + "; ".join(
            f"{x['layer']} ({x['reason']})" for x in left[:10]) + (" ..." if len(left) > 10 else "")]
    return lines + [""]


def pruning_table(p: dict | None) -> list[str]:
    """Per-layer output widths and parameters before and after pruning."""
    if not p:
        return []
    lines = ["### Pruning per layer", "",
             f"MACs {p['before']['macs']:,} -> {p['after']['macs']:,} ({p['macs_reduction']:.2f}x fewer), "
             f"parameters {p['before']['params']:,} -> {p['after']['params']:,} ({p['params_reduction']:.2f}x fewer), "
             f"in {p['steps']} step(s); accuracy right after pruning {_fmt(p['accuracy_before_finetune'], '.4f')}, "
             f"after the distilled fine-tune {_fmt(p['accuracy'], '.4f')}.", "",
             "| layer | channels before | after | params before | after |", "|---|---:|---:|---:|---:|"]
    for layer in p["layers"]:
        lines.append(f"| {layer['name']} | {layer['out_before']} | {layer['out_after']} | {layer['params_before']:,} | "
                     f"{layer['params_after']:,} |")
    left = p.get("left_unpruned") or []
    if left:
        lines += ["", "Left unpruned (structures the dependency graph could not follow; their widths are kept):", ""]
        lines += [f"- {x['reason']}: {', '.join(x['layers'][:8])}{' ...' if len(x['layers']) > 8 else ''}"
                  for x in left]
    return lines + [""]


def plot(rep: dict, path: Path) -> None:
    """Accuracy (or agreement, for unlabelled sets) against p50 latency; marker area follows file size."""
    plt = figure.pyplot()

    labelled = bool(rep["evaluation"]["labelled"])
    key = "accuracy" if labelled else "top1_agreement"
    metric = rep["evaluation"].get("metric") or {}
    scale = 100 if not labelled or metric.get("name", "top1") in ("top1", "top5") else 1
    pts = [a for a in rep["artifacts"] if a["latency_ms"] and a[key] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if pts:
        biggest = max(a["size_bytes"] for a in pts)
        markers = "osD^vP*Xh<>"
        for i, a in enumerate(pts):
            ax.scatter(a["latency_ms"]["p50"], scale * a[key], s=40 + 600 * a["size_bytes"] / biggest, alpha=0.55,
                       marker=markers[i % len(markers)],
                       label=f"{a['name']} ({a['runtime']}, {a['size_bytes'] / 1024:.0f} KB)")
        ys = [scale * a[key] for a in pts]
        mid, half = (max(ys) + min(ys)) / 2, max((max(ys) - min(ys)) / 2 * 1.3, 0.5)
        ax.set_ylim(mid - half, mid + half)  # at least 1 point of range: tiny differences stay visibly tiny
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="best", markerscale=0.5)
    ax.set_xlabel(f"p50 latency, ms (batch 1, {rep['target']['name']})")
    ax.set_ylabel((f"{metric_name(rep)}" + (", %" if scale == 100 else "")) if labelled
                  else "top-1 agreement with PyTorch, %")
    ax.set_title(f"{rep['recipe']['name']}: {metric_name(rep)} against latency (marker area ~ file size)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_bytes(path, figure.png(fig))


def attach_debug(rep: dict, run_dir: Path) -> None:
    """Give each artifact row its layer-by-layer page's findings (`debug`), when one exists for this very file."""
    from pipeline.core import bounded_json

    for row in rep["artifacts"]:
        row["debug"] = None
        page = run_dir / "debug" / f"{row['name']}.json"
        if not page.is_file():
            continue
        try:
            found = bounded_json.load(page, str(page))
        except UserError:
            continue  # a damaged page is not a finding; `phone-pipeline debug` rewrites it
        if not isinstance(found, dict) or found.get("artifact", {}).get("sha256") != row["sha256"]:
            continue  # a page of an earlier file of the same name
        row["debug"] = {"first_divergent_layer": found.get("first_divergent_layer"),
                        "worst_layer": found.get("worst_layer"), "worst_sqnr_db": found.get("worst_sqnr_db"),
                        "page": f"debug/{row['name']}.md"}


def _debug_lines(rep: dict) -> list[str]:
    rows = [a for a in rep["artifacts"] if a.get("debug")]
    if not rows:
        return []
    lines = ["## Layer by layer", "",
             "| artifact | gate | first divergent layer | worst layer | worst SQNR dB | page |",
             "|---|---|---|---|---:|---|"]
    for a in rows:
        d = a["debug"]
        sqnr = d["worst_sqnr_db"]
        shown = format(sqnr, ".1f") if isinstance(sqnr, float) else sqnr or "-"
        lines.append(f"| {a['name']} | {a['gate']} | {d['first_divergent_layer'] or 'none'} | "
                     f"{d['worst_layer'] or '-'} | {shown} | [{d['page']}]({d['page']}) |")
    return lines + [""]


def write(run_dir: Path, manifest: dict | None = None) -> Path:
    """Write report.json, report.md and report.png into `run_dir`; returns report.md's path."""
    if manifest is None:
        path = run_dir / "manifest.json"
        manifest = load_manifest(path)
        try:
            rep = build(manifest)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # a file from outside, not our own run
            raise UserError(f"{path}: cannot be read as a run manifest ({type(exc).__name__}: {exc}); rerun the "
                            "pipeline to write one") from None
    else:
        rep = build(manifest)
    attach_debug(rep, run_dir)
    int8_payoff.attach_costliest_ops(rep["int8_not_paying"], rep["artifacts"], run_dir)
    atomic_write_json(run_dir / "report.json", rep)
    atomic_write_bytes(run_dir / "report.md", markdown(rep).encode())
    plot(rep, run_dir / "report.png")
    return run_dir / "report.md"
