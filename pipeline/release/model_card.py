"""MODEL_CARD.md: what the bundle's models are, how well they did, where that was measured, and what it does not say."""

from __future__ import annotations


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _data_lines(manifest: dict, report: dict) -> list[str]:
    settings = manifest["recipe"]["settings"]
    data, train, weights = settings["data"], settings.get("train", {}), settings.get("weights", {})
    ev = report["evaluation"]
    lines = [f"- Dataset: `{data['dataset']}`; evaluated on {ev['samples']} test samples "
             f"({'labelled' if ev['labelled'] else 'unlabelled: agreement with PyTorch only, no accuracy'})."]
    if weights.get("source") == "train":
        lines.append(f"- Weights: trained by the pipeline ({train.get('epochs', '-')} epoch(s), "
                     f"at most {train.get('max_train_samples', 'all')} training images).")
    else:
        lines.append(f"- Weights: `{weights.get('source', '-')}`.")
    return lines


def _metrics_table(report: dict, shipped: set[str]) -> list[str]:
    lines = ["| artifact | shipped | runtime | precision | size KB | accuracy | agreement | max abs diff | p50 ms "
             "| p90 ms | gate |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for a in report["artifacts"]:
        lat = a.get("latency_ms") or {}
        lines.append(f"| {a['name']} | {'yes' if a['name'] in shipped else 'no'} | {a['runtime'] or '-'} | "
                     f"{a['precision']} | {a['size_bytes'] / 1024:.1f} | {_fmt(a['accuracy'], '.4f')} | "
                     f"{_fmt(a['top1_agreement'], '.4f')} | {_fmt(a['max_abs_diff'], '.2e')} | "
                     f"{_fmt(lat.get('p50'), '.3f')} | {_fmt(lat.get('p90'), '.3f')} | {a['gate']} |")
    return lines


def model_card(manifest: dict, report: dict, meta: dict) -> str:
    """The card's Markdown text, from the run's manifest and report and the bundle's metadata."""
    sel = meta["selection"]
    shipped = {a["name"] for a in meta["artifacts"]}
    bench = report["benchmark"]["settings"] or {}
    on_host = meta["release"]["device_kind"] == "host"
    lines = [f"# {meta['model']['name']} {meta['model']['version']} for {meta['release']['target']}", "",
             f"Image classification into {meta['output']['classes']} classes from a "
             f"{meta['input']['height']}x{meta['input']['width']} "
             f"{'grey' if meta['input']['channels'] == 1 else 'RGB'} picture; outputs are logits.", "",
             "## Files", ""]
    lines += [f"- `{a['file']}`: {a['format']} {a['precision']}, {a['layout']} input {a['input_shape']} "
              f"{a['input_dtype']}, runs on {a['runtime']}" for a in meta["artifacts"]]
    lines += ["", "## Data", ""] + _data_lines(manifest, report)
    lines += ["", "## Metrics per artifact", "",
              f"Latency: batch 1, {bench.get('warmup', '-')} warm-up + {bench.get('runs', '-')} timed runs, "
              f"{bench.get('threads', '-')} thread(s), each runtime in a fresh process, measured on "
              f"{sel['measured_on']}. Agreement: top-1 agreement with the PyTorch fp32 model.", ""]
    lines += _metrics_table(report, shipped)
    lines += ["", "## Why these artifacts", "", f"Rule: {sel['rule']}.", ""]
    lines += [f"- {c['name']} ({c['format']} {c['precision']}): p50 {_fmt(c['p50_ms'], '.4f')} ms, gate {c['gate']}"
              f"{' -> **shipped**' if c['chosen'] else ''}" for c in sel["candidates"]]
    lines += ["", "## Limitations", ""]
    lines.append("- Latency and memory were measured on the host CPU of the build machine, **not on a phone**; "
                 "expect other numbers on a device, and possibly another ranking between formats.")
    if not on_host:
        lines.append(f"- Target {meta['release']['target']!r}: its on-device results, where the on_device stage ran, "
                     "are in `report.json` (`on_device[]`; emulated latencies must not be compared with a phone's).")
    lines += ["- Accuracy holds for pictures preprocessed exactly as `pipeline/preprocess.py` does (grey/RGB mix, "
              "half-pixel bilinear resize, `(v/255 - mean)/std`); other preprocessing changes the results.",
              "- The sample outputs in `samples/outputs/` were recorded with the host runtimes (LiteRT, ExecuTorch) "
              "when the bundle was made; `pipeline verify` reproduces them.",
              "- Evaluated on the test split of the dataset named above only; no robustness or fairness testing.",
              "", "Tool versions: `VERSIONS.json`. Full validation record: `report.md`, `report.json`.", ""]
    return "\n".join(lines)
