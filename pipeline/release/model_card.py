"""MODEL_CARD.md: what the bundle's models are, how well they did, where that was measured, and what it does not say."""

from __future__ import annotations

from pipeline.release.metadata import device_description, host_description
from pipeline.release.select import target_device_rows


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


def _device_table(report: dict, shipped: set[str]) -> list[str]:
    lines = ["| artifact | shipped | runtime | samples | accuracy | host accuracy | host agreement | max abs diff "
             "| p50 ms | cv | gate |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in target_device_rows(report).values():
        lat = r.get("latency_ms") or {}
        lines.append(f"| {r['name']} | {'yes' if r['name'] in shipped else 'no'} | {r['runtime']} | {r['samples']} | "
                     f"{_fmt(r['accuracy'], '.4f')} | {_fmt(r['host_accuracy'], '.4f')} | "
                     f"{_fmt(r['host_agreement'], '.4f')} | {_fmt(r['max_abs_diff'], '.2e')} | "
                     f"{_fmt(lat.get('p50'), '.3f')} | {_fmt(lat.get('cv'), '.2f')} | {r.get('gate', '-')} |")
    return lines


def _what_it_does(meta: dict) -> str:
    if meta["model"]["task"] == "image-classification":
        return (f"Image classification into {meta['output']['classes']} classes from a "
                f"{meta['input']['height']}x{meta['input']['width']} "
                f"{'grey' if meta['input']['channels'] == 1 else 'RGB'} picture; outputs are logits.")
    a = meta["artifacts"][0]
    return f"A model of {len(a['inputs'])} input(s) and {len(a['outputs'])} output(s), listed per file below."


def _tensors(a: dict) -> str:
    """An artifact's tensors in words: `inputs mfcc [1, 13, 40] float32; outputs scores [1, 10] float32`."""
    def one(t: dict) -> str:
        q = t.get("quantization")
        layout = f" {t['layout']}" if t.get("layout") else ""
        quant = f" (scale {q['scale']:.4g}, zero point {q['zero_point']})" if q else ""
        return f"{t['name']} {t['shape']} {t['dtype']}{layout}{quant}"

    return f"inputs {', '.join(map(one, a['inputs']))}; outputs {', '.join(map(one, a['outputs']))}"


def model_card(manifest: dict, report: dict, meta: dict) -> str:
    """The card's Markdown text, from the run's manifest and report and the bundle's metadata."""
    sel = meta["selection"]
    shipped = {a["name"] for a in meta["artifacts"]}
    bench = report["benchmark"]["settings"] or {}
    on_host = meta["release"]["device_kind"] == "host"
    lines = [f"# {meta['model']['name']} {meta['model']['version']} for {meta['release']['target']}", "",
             _what_it_does(meta), "", "## Files", ""]
    lines += [f"- `{a['file']}`: {a['format']} {a['precision']}, {_tensors(a)}, runs on {a['runtime']}"
              for a in meta["artifacts"]]
    lines += ["", "## Data", ""] + _data_lines(manifest, report)
    lines += ["", "## Metrics per artifact", "",
              f"Latency: batch 1, {bench.get('warmup', '-')} warm-up + {bench.get('runs', '-')} timed runs, "
              f"{bench.get('threads', '-')} thread(s), each runtime in a fresh process, measured on "
              f"{host_description(manifest)}. Agreement: top-1 agreement with the artifact's reference.", ""]
    lines += _metrics_table(report, shipped)
    device = device_description(report)
    if device:
        lines += ["", "## On the target's device", "", f"Measured on {device}.", ""]
        lines += _device_table(report, shipped)
    lines += ["", "## Why these artifacts", "", f"Rule: {sel['rule']}.", "", f"Latency used: {sel['measured_on']}.",
              ""]
    lines += [f"- {c['name']} ({c['format']} {c['precision']}): p50 {_fmt(c['p50_ms'], '.4f')} ms "
              f"({c.get('latency_source', 'host')}), gate {c['gate']}"
              f"{'' if c.get('device_gate') is None else ', on-device gate ' + c['device_gate']}"
              f"{' -> **shipped**' if c['chosen'] else ''}" for c in sel["candidates"]]
    lines += ["", "## Limitations", ""]
    if device is None:
        lines.append("- Latency and memory were measured on the host CPU of the build machine, **not on a phone**; "
                     "expect other numbers on a device, and possibly another ranking between formats.")
    elif "EMULATED" in device:
        lines.append("- Latency was measured on the host CPU and on an emulated arm64 device, **not on a phone**: "
                     "neither predicts a phone's speed. The emulated device checks that arm64 outputs match.")
    else:
        lines.append("- Latency on the device was measured once, under the thermal state and load it had then "
                     "(see `report.json` `on_device[]`); memory was measured on the host only. A format the device "
                     "did not run was ranked by host latency (see 'Latency used' above).")
    if not on_host and device is None:
        lines.append(f"- Target {meta['release']['target']!r}: the on_device stage did not run; nothing in this "
                     "bundle was validated on the device.")
    lines += ["- Accuracy holds for pictures preprocessed exactly as `pipeline/artifacts/preprocess.py` does "
              "(grey/RGB mix, half-pixel bilinear resize, `(v/255 - mean)/std`); other preprocessing changes the "
              "results.",
              "- The sample outputs in `samples/outputs/` were recorded with the host runtimes (LiteRT, ExecuTorch) "
              "when the bundle was made; `pipeline verify` reproduces them.",
              "- Evaluated on the test split of the dataset named above only; no robustness or fairness testing.",
              "", "Tool versions: `VERSIONS.json`. Full validation record: `report.md`, `report.json`.", ""]
    return "\n".join(lines)
