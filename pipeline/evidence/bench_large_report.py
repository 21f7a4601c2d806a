"""report.md of `make bench-large`, built from its report.json alone (so it can be rebuilt without rerunning)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes

COLUMNS = ("artifact", "runtime", "precision", "MACs (hook)", "MACs (ONNX)", "size", "p50 ms", "min ms",
           "vs fp32 same runtime [95% CI]", "GMAC/s", "% of peak", "top-1 agreement vs PyTorch fp32", "load")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _speedup(s: dict | None) -> str:
    return "baseline" if s is None else f"{s['ratio']:.2f}x [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"


def table(rows: list[dict], photos: int) -> list[str]:
    """The measured table of one model's rows, markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        agree = round(r["top1_agreement"] * photos)
        lines.append("| " + " | ".join((
            r["artifact"], r["runtime"], r["precision"], f"{r['macs_hook'] / 1e6:.0f}M", f"{r['macs_onnx'] / 1e6:.0f}M",
            _size(r["size_bytes"]), f"{r['p50_ms']:.2f}", f"{r['min_ms']:.2f}", _speedup(r["speedup"]),
            f"{r['gmacs']:.1f}", f"{r['percent_of_peak']:.0f}% of {r['peak']}",
            f"{agree}/{photos} ({100 * r['top1_agreement']:.0f}%)", f"{r['load1_round']:.1f}")) + " |")
    return lines


def _header(rep: dict) -> list[str]:
    s, m, b, peak = rep["settings"], rep["machine"], rep["benchmark"], rep["peak"]
    tools = rep["tools"]
    lines = [
        "# bench-large: real model sizes, every compression variant, three runtimes",
        "",
        f"Created {rep['created']}. Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX2'}), "
        f"Python {m['python']}. Runtimes: LiteRT (ai-edge-litert {tools['ai-edge-litert']}), ExecuTorch "
        f"{tools['executorch']} (XNNPACK), ONNX Runtime {tools['onnxruntime']}; converters onnx2tf "
        f"{tools['onnx2tf']}, torch {tools['torch']}, torchao {tools['torchao']}, torch-pruning "
        f"{tools['torch-pruning']}.",
        "",
        f"Input {s['size']}x{s['size']} RGB, batch 1, {s['threads']} thread(s). Timing: the pipeline's benchmark "
        f"loop, {b['rounds']} interleaved rounds (every artifact once per round, each in a fresh process), "
        f"{s['warmup']} warm-up and {s['runs']} timed invokes per process; p50 is the median round's, min the "
        "fastest single invoke of all rounds; speed-ups are against the unpruned fp32 artifact of the same model "
        "and runtime, with a 95% bootstrap interval over the rounds. Benchmark "
        f"{b['seconds']:.0f} s; whole command {rep['seconds']['total']:.0f} s (building and the peak "
        f"{rep['seconds']['build_and_peak']:.0f} s; artifacts built by an earlier run are reused).",
        "",
        f"Machine load during the benchmark: load average {b['machine']['load1_before']:.1f} before, "
        f"{b['machine']['load1_max']:.1f} at most, CPU steal "
        + (f"{100 * b['machine']['steal_fraction']:.1f}%" if b["machine"]["steal_fraction"] is not None else "-")
        + f" ({b['machine']['cpu_count']} cores). The `load` column is the 1-minute load average around each "
          "artifact's median round.",
    ]
    lines += ["", *(f"**Warning:** {w}." for w in b["machine"]["warnings"])] if b["machine"]["warnings"] else []
    lines += ["", "## Peak: single-thread GEMM measured here", "",
              "| precision | kernel | n | best GMAC/s | median GMAC/s |", "|---|---|---:|---:|---:|"]
    for precision, p in peak.items():
        for k in p["kernels"]:
            mark = " (peak)" if k["kernel"] == p["kernel"] else ""
            lines.append(f"| {precision} | {k['kernel']}{mark} | {k['n']} | {k['best_gmacs']:.1f} | "
                         f"{k['median_gmacs']:.1f} |")
    lines += ["", "An n x n x n product counts n^3 MACs; each kernel ran in a fresh process, one thread, best of "
              f"{peak['fp32']['kernels'][0]['repeats']} after a warm-up. GMAC/s of a model = its MACs (hook count) / "
              "p50. fp32 and fp16 rows are compared with the fp32 peak (LiteRT's XNNPACK runs fp16-weight files in "
              "fp32 on x86: the weights are dequantized at load), int8 rows with the int8 peak. A network does "
              "worse than a GEMM: depthwise convolutions, small layers, activations and memory traffic are not "
              "compute-bound."]
    return lines


def _model_section(name: str, info: dict, rows: list[dict], photos: int) -> list[str]:
    ref = info["reference_top1"]
    lines = ["", f"## {name}", "", f"Weights: {info['weights']}. PyTorch fp32 gives {len(set(ref))} different "
             f"top-1 classes on the {len(ref)} photos (agreement with a model that gives one class for every photo "
             "would prove little).", ""]
    lines += ["| variant | MACs (hook) | MACs (ONNX) | params | PyTorch fp32 agreement | PyTorch int8 (PT2E) "
              "agreement | build s |", "|---|---:|---:|---:|---:|---:|---|"]
    for variant, v in info["variants"].items():
        torch_int8 = v.get("torch_int8_agreement")
        lines.append(f"| {variant} | {v['macs_hook'] / 1e6:.1f}M | {v['macs_onnx'] / 1e6:.1f}M | "
                     f"{v['params'] / 1e6:.2f}M | {100 * v['torch_fp32_agreement']:.0f}% | "
                     + (f"{100 * torch_int8:.0f}%" if torch_int8 is not None else "-") + " | "
                     + ", ".join(f"{k} {t:g}" for k, t in v["build_seconds"].items()) + " |")
    lines += ["", *table(rows, photos)]
    return lines


NOTES = [
    "",
    "## What the columns are, and what is not here",
    "",
    "- **top-1 agreement** is with the unpruned PyTorch fp32 model on the 14 bundled photos (scikit-image). There is "
    "no labelled ImageNet data offline, so this is no accuracy. int8 is calibrated on 112 views of 14 other "
    "photographs (pipeline/data/calibration_photos.py), not on the 14 photos (the log warns when it had to).",
    "- **Pruned** rows: Torch-Pruning structured pruning (L2 importance, widths rounded to 8, classifier kept) of "
    "that share of channels, **without fine-tuning** (no labelled data): their low agreement is what pruning alone "
    "costs; a real deployment would fine-tune.",
    "- **int8**: TFLite int8 is onnx2tf's full-integer PTQ (int8 input and output, calibrated on those photographs); "
    "the int8 .pte is PT2E PTQ with the XNNPACK quantizer, ReLU6 fused into the convolution before it "
    "(conv_clamp). The two are different quantizations of the same float model.",
    "- **fp16** is TFLite only: the pipeline makes no fp16 .pte or ONNX. **ONNX Runtime** runs the fp32 files only: "
    "the pipeline makes no int8 ONNX (a Q/DQ ONNX would need its own quantizer, and ORT's graph optimisations change "
    "Q/DQ numerics on some CPUs, ../shared/STACK.md).",
    "- Times are of the runtime's invoke alone; input layout change and quantization are outside the timed loop.",
]


def render(rep: dict) -> str:
    photos = len(next(iter(rep["models"].values()))["reference_top1"])
    lines = _header(rep)
    for name, info in rep["models"].items():
        lines += _model_section(name, info, [r for r in rep["rows"] if r["model"] == name], photos)
    return "\n".join(lines + NOTES) + "\n"


def write(path: Path, rep: dict) -> Path:
    atomic_write_bytes(path, render(rep).encode())
    return path


if __name__ == "__main__":  # rebuild report.md from report.json
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "build/bench-large")
    print(write(folder / "report.md", json.loads((folder / "report.json").read_text())))
