"""The debug page of one artifact: debug/<artifact>.json (every number), .md (the table) and .png (SQNR by layer)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes
from pipeline.core import figure


def _finite(obj):
    """JSON has no infinity: an exact match (SQNR inf) is written as the string "inf"."""
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _db(v: float) -> str:
    return "exact" if math.isinf(v) and v > 0 else f"{v:.1f}"


def _drop(row: dict) -> str:
    """How far the layer's SQNR falls below its inputs' (an exact input and a lossy op: 'from exact')."""
    if "sqnr_drop_db" not in row:
        return "-"
    if math.isinf(row["sqnr_drop_db"]):
        return "from exact"
    return f"{row['sqnr_drop_db']:.1f}"


def markdown(r: dict) -> str:
    art, out = r["artifact"], r["output"]
    lines = [f"# Layer by layer: {art['name']}", "",
             f"{art['format']} {art['precision']} `{art['path']}` against {r['reference']['name']} "
             f"({r['reference']['runtime']}) on {r['samples']} evaluation samples; divergence threshold "
             f"{r['min_sqnr_db']:g} dB SQNR.", ""]
    if r["first_divergent_layer"]:
        lines.append(f"**First divergent layer: `{r['first_divergent_layer']}`**; worst: `{r['worst_layer']}` "
                     f"({_db(r['worst_sqnr_db'])} dB).")
    elif r["layers"]:
        lines.append(f"No layer below {r['min_sqnr_db']:g} dB; worst: `{r['worst_layer']}` "
                     f"({_db(r['worst_sqnr_db'])} dB).")
    else:
        lines.append("No layer could be matched; only the output is compared.")
    lines += ["", f"Output: SQNR {_db(out['sqnr_db'])} dB, cosine {out['cosine']:.5f}, max abs error "
              f"{out['max_abs_error']:.3g}, top-1 agreement {out['top1_agreement']:.3f}.", ""]
    lines += [f"- {n}" for n in r["notes"]]
    lines += ["", "| # | layer | kind | shape | SQNR dB | drop dB | cosine | max abs err | rel err | matched by |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(r["layers"]):
        mark = " **<-**" if row["layer"] == r["first_divergent_layer"] else ""
        weights = (f"; weights differ {row['weight_relative_difference']:.2g}"
                   if row.get("weight_relative_difference", 0) > 0.05 else "")
        lines.append(f"| {i} | `{row['layer']}`{mark} | {row['kind']} | {'x'.join(map(str, row['shape']))} | "
                     f"{_db(row['sqnr_db'])} | {_drop(row)} | {row['cosine']:.5f} | {row['max_abs_error']:.3g} | "
                     f"{row['relative_error']:.3g} | {row['matched_by']}{weights} |")
    lines += ["", f"{len(r['layers'])} layers matched; {r['modules_without_a_tensor']} modules have no tensor of "
              f"their own in the artifact (fused, or not matched); {len(r['unmatched'])} tensors left out:"]
    lines += [f"- `{u['layer']}`: {u['reason']}" for u in r["unmatched"][:50]]
    lines += ["", f"![SQNR by layer]({Path(art['name']).name}.png)", "", f"Took {r['seconds']:.1f} s.", ""]
    return "\n".join(lines)


def plot(r: dict) -> bytes:
    plt = figure.pyplot()
    values = [min(row["sqnr_db"], 150.0) for row in r["layers"]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(values)), 3.6), dpi=110)
    ax.plot(range(len(values)), values, marker="o", markersize=3)
    ax.axhline(r["min_sqnr_db"], color="grey", linestyle="--", linewidth=1, label=f"threshold {r['min_sqnr_db']:g} dB")
    for key, color in (("first_divergent_layer", "red"), ("worst_layer", "black")):
        idx = next((i for i, row in enumerate(r["layers"]) if row["layer"] == r[key]), None)
        if idx is not None:
            ax.scatter([idx], [values[idx]], color=color, zorder=3, label=f"{key.split('_')[0]}: {r[key]}")
    ax.set_xlabel("layer (model order)")
    ax.set_ylabel("SQNR (dB), capped at 150")
    ax.set_title(f"{r['artifact']['name']} against {r['reference']['name']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return figure.png(fig)


def write(folder: Path, r: dict) -> Path:
    """Write the three files (each atomically); returns the .md path."""
    name = r["artifact"]["name"]
    atomic_write_bytes(folder / f"{name}.json", (json.dumps(_finite(r), indent=2) + "\n").encode())
    atomic_write_bytes(folder / f"{name}.png", plot(r))
    md = folder / f"{name}.md"
    atomic_write_bytes(md, markdown(r).encode())
    return md
