"""What a search leaves behind: search.json (every trial, the front, the choice), search.md and front.png."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from pipeline.artifacts.artifact import atomic_write_bytes, atomic_write_json
from pipeline.core import figure
from pipeline.search.choice import summary_row


def document(job_info: dict, records: list[dict], front: list[int], chosen: dict | None, why: str,
             final: dict | None, wall: dict) -> dict[str, Any]:
    return {"schema": "phone-pipeline/search/1", **job_info, "trials": records, "front": front,
            "chosen": None if chosen is None else chosen["number"], "why": why, "final": final, "wall": wall}


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(doc: dict) -> str:
    space = doc["space"]
    lines = [f"# Search: {doc['recipe']} on {doc['target']}", "",
             f"{len(doc['trials'])} trial(s), sampler {space['sampler']} (seed {space['seed']}), study "
             f"`{doc['storage']}`. Objectives: top-1 accuracy (max) and p50 latency measured on "
             f"{doc['measured_on']} (min). Gates: accuracy drop <= {space['max_accuracy_drop']} points against the "
             "fp32 model"
             + (f", p50 <= {space['max_latency_ms']} ms" if space["max_latency_ms"] > 0 else "")
             + (f", speed-up >= {space['min_speedup']}x" if space["min_speedup"] > 0 else "")
             + ", and the pipeline's own gates on the artifact (parity with its reference, compression limits).", "",
             f"Trial numbers are quick ones: accuracy on {space['eval_samples'] or 'all'} test images, latency from "
             f"{space['bench_rounds']} round(s) of {space['bench_runs']} runs. The chosen trial is re-run on the "
             "whole test set with the target's full benchmark (\"final\" below).", ""]
    wall = doc["wall"]
    lines += [f"Wall time: {wall['seconds']:.0f} s with {wall['workers']} worker(s) "
              f"({wall['trials_run_now']} trial(s) run by this invocation), "
              f"final re-run {wall['final_seconds']:.0f} s.",
              ""]
    lines += ["## Trials", "", "| trial | settings | artifact | accuracy % | drop | p50 ms | speed-up | outcome |",
              "|---:|---|---|---:|---:|---:|---:|---|"]
    for r in doc["trials"]:
        s = summary_row(r)
        mark = " **front**" if r["number"] in doc["front"] else ""
        mark += " **chosen**" if r["number"] == doc["chosen"] else ""
        outcome = s["outcome"] + (f": {s['line']}" if s["line"] else "")
        lines.append(f"| {s['trial']}{mark} | {s['settings']} | {s['artifact']} | {_fmt(s['accuracy'], '.2f')} | "
                     f"{_fmt(s['drop'], '.2f')} | {_fmt(s['p50_ms'], '.4f')} | {_fmt(s['speedup'], '.2f')}x | "
                     f"{outcome} |")
    if doc.get("repeats"):
        lines += ["", f"The sampler also proposed {len(doc['repeats'])} time(s) settings already measured (trial "
                  + ", ".join(f"{r['number']} = {r['repeat_of']}" for r in doc["repeats"])
                  + "); the earlier result answered them, nothing was run again and they do not count."]
    lines += ["", "## Choice", ""]
    if doc["chosen"] is None:
        lines.append(doc["why"])
    else:
        chosen = next(r for r in doc["trials"] if r["number"] == doc["chosen"])
        m = chosen["measured"]
        lines.append(f"Trial {chosen['number']} ({chosen['settings']}, `{chosen['artifact']}`): {doc['why']}. "
                     f"Quick numbers: accuracy {m['accuracy']:.2f}% (fp32 {m['fp32_accuracy']:.2f}%), p50 "
                     f"{m['p50_ms']:.4f} ms, {m['speedup']:.2f}x over {m['baseline']}.")
        final = doc.get("final")
        if final and final.get("measured"):
            f = final["measured"]
            ci = f.get("speedup_interval")
            lines += ["", f"Final (whole test set, {f['eval_samples']} images; full benchmark, {f['bench_rounds']} "
                          f"round(s) of {f['bench_runs']} runs, on {f['measured_on']}): accuracy {f['accuracy']:.2f}% "
                          f"(fp32 {f['fp32_accuracy']:.2f}%, drop {f['accuracy_drop']:.2f}), p50 {f['p50_ms']:.4f} "
                          f"ms against {f['baseline_p50_ms']:.4f} ms for {f['baseline']}: {f['speedup']:.2f}x"
                          + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + f". Run: `{f['run_dir']}`."]
            if final.get("failed_gates"):
                lines += ["", f"On the whole test set it no longer meets every gate: {final['line']}."]
        elif final:
            lines += ["", f"The final re-run failed: {final['line']}"]
    lines.append("")
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    """Accuracy against measured p50, one colour per runtime; the front drawn as a line, the choice circled."""
    plt = figure.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    measured = [r for r in doc["trials"] if r["state"] == "complete"]
    colours = {"tflite": "tab:blue", "executorch": "tab:orange"}
    for runtime, colour in colours.items():
        pts = [r for r in measured if r["params"]["runtime"] == runtime]
        if pts:
            ax.scatter([r["measured"]["p50_ms"] for r in pts], [r["measured"]["accuracy"] for r in pts], c=colour,
                       alpha=[1.0 if r["outcome"] == "feasible" else 0.35 for r in pts], label=runtime, s=36)
            for r in pts:
                ax.annotate(str(r["number"]), (r["measured"]["p50_ms"], r["measured"]["accuracy"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    front = sorted((r for r in measured if r["number"] in doc["front"]), key=lambda r: r["measured"]["p50_ms"])
    if front:
        ax.step([r["measured"]["p50_ms"] for r in front], [r["measured"]["accuracy"] for r in front], where="post",
                color="black", linewidth=1, label="Pareto front (feasible)")
    if doc["chosen"] is not None:
        c = next(r for r in measured if r["number"] == doc["chosen"])
        ax.scatter([c["measured"]["p50_ms"]], [c["measured"]["accuracy"]], s=220, facecolors="none",
                   edgecolors="red", linewidths=2, label=f"chosen: trial {c['number']}")
    if measured:
        fp32 = max(r["measured"]["fp32_accuracy"] for r in measured)
        ax.axhline(fp32 - doc["space"]["max_accuracy_drop"], color="grey", linestyle=":", linewidth=1,
                   label="accuracy limit")
        ax.set_xscale("log")
        from matplotlib.ticker import LogFormatter  # plain numbers (20, 30) instead of 2x10^1 on a short range

        ax.xaxis.set_major_formatter(LogFormatter())
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
        ax.legend(fontsize=7, loc="best")
    # one runtime per trial, so measured_on lists several ("emulated-arm64 (emulated, executorch), ..."): wrap it
    ax.set_xlabel("\n".join(textwrap.wrap(f"p50 latency, ms (quick trial benchmark, {doc['measured_on']})", 90,
                                           break_on_hyphens=False)),
                  fontsize=9)
    ax.set_ylabel(f"top-1 accuracy, % ({doc['space']['eval_samples'] or 'all'} test images)")
    ax.set_title(f"search {doc['recipe']} on {doc['target']}: {len(doc['trials'])} trials", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_bytes(path, figure.png(fig))


def write(directory: Path, doc: dict) -> None:
    atomic_write_json(directory / "search.json", doc)
    (directory / "search.md.tmp").write_text(markdown(doc))
    (directory / "search.md.tmp").replace(directory / "search.md")
    plot(doc, directory / "front.png")
