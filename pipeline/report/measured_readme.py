"""The README's measured sections, generated from `measured/*.json` so that every number there is one a run wrote.

A section sits between two marker comments and is rewritten whole; the text around it is left as it is::

    <!-- measured:begin fashion-mnist-mobilenetv2__host -->
    ... generated: the table of measured/fashion-mnist-mobilenetv2__host.json ...
    <!-- measured:end fashion-mnist-mobilenetv2__host -->

Section names: `index` (one line per measured file), `<recipe>__<target>` (that file's table) and
`<recipe>__<target>.glance` (one paragraph: the fastest artifact of each runtime against its baseline).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes
from pipeline.core.errors import UserError, shown
from pipeline.report import measured

__all__ = ["README", "check", "render", "rewrite", "write"]

README = measured.MEASURED_DIR.parent / "README.md"
_BEGIN = re.compile(r"<!-- measured:begin (\S+) -->\n")
_RUNTIMES = {"litert": "LiteRT", "executorch": "ExecuTorch", "onnxruntime": "ONNX Runtime", "torch": "PyTorch"}


def rewrite(text: str, docs: dict[str, dict], label: str = "README.md") -> tuple[str, list[str]]:
    """`text` with every section regenerated from `docs`, and the names of the sections that changed."""
    out, changed, pos = [], [], 0
    for begin in _BEGIN.finditer(text):
        if begin.start() < pos:
            raise UserError(f"{label}: section {shown(begin[1], 60)} begins inside another section")
        name, end_marker = begin[1], f"<!-- measured:end {begin[1]} -->"
        end = text.find(end_marker, begin.end())
        if end < 0:
            raise UserError(f"{label}: section {shown(name, 60)} has no '{shown(end_marker, 80)}'")
        body = render(name, docs, label)
        if text[begin.end():end] != body:
            changed.append(name)
        out += [text[pos:begin.end()], body]
        pos = end
    return "".join(out) + text[pos:], changed


def write(readme: Path = README, measured_dir: Path = measured.MEASURED_DIR) -> list[str]:
    """Regenerate the README's sections in place (atomically); returns the names of the sections that changed."""
    text, changed = rewrite(_read(readme), measured.load_all(measured_dir), shown(readme.name))
    if changed:
        atomic_write_bytes(readme, text.encode())
    return changed


def check(readme: Path = README, measured_dir: Path = measured.MEASURED_DIR) -> list[str]:
    """The names of the sections whose text differs from what the measured files give (empty: up to date)."""
    return rewrite(_read(readme), measured.load_all(measured_dir), shown(readme.name))[1]


def _read(readme: Path) -> str:
    try:
        return readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shown(readme)}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def render(name: str, docs: dict[str, dict], label: str = "README.md") -> str:
    """The generated text of section `name`, ending with a newline."""
    if name == "index":
        return index(docs)
    key, _, kind = name.partition(".")
    if key not in docs or kind not in ("", "glance"):
        known = ", ".join(docs) or "none"
        raise UserError(f"{label}: section {shown(name, 60)}: no measured/{shown(key, 60)}.json for it "
                        f"(measured files: {known}; sections are index, <recipe>__<target>[.glance])")
    try:
        return glance(key, docs[key]) if kind else table(key, docs[key])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a file edited by hand, or from elsewhere
        raise UserError(f"measured/{key}.json: cannot be shown ({type(exc).__name__}: {shown(exc, 80)}); record it "
                        "again with `phone-pipeline record RUN_DIR`") from None


def _wrap(text: str) -> str:
    """Prose wrapped as the rest of the README is (118 columns), never inside a name or a link."""
    return textwrap.fill(text, width=118, break_long_words=False, break_on_hyphens=False)


def _f(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cpu(machine: dict) -> str:
    return machine.get("cpu_model") or machine.get("processor", "?")


def where(doc: dict) -> str:
    """Where and when: 'on 2026-12-07 10:31 UTC, x86_64 (2 cores, Linux 6.1), Python 3.12.3, load average ...'."""
    m, load = doc["machine"], doc.get("load") or {}
    text = (f"{doc['date'][:10]} {doc['date'][11:16]} UTC on {_cpu(m)} ({m.get('cores', '?')} cores, "
            f"{m.get('system', '?')}), Python {m.get('python', '?')}")
    if load:
        steal = load.get("steal_fraction")
        text += (f", load average {_f(load.get('load1_before'), '.1f')} -> {_f(load.get('load1_after'), '.1f')} "
                 f"(max {_f(load.get('load1_max'), '.1f')}) during the benchmark"
                 + ("" if steal is None else f", CPU steal {100 * steal:.1f}%"))
    return text


def _source(key: str, doc: dict) -> str:
    return (f"[`measured/{key}.json`](measured/{key}.json), written by `phone-pipeline run --recipe "
            f"{doc['recipe']['name']} --target {doc['target']['name']} --record`")


def index(docs: dict[str, dict]) -> str:
    """One row per measured file: what, where, when, under what load."""
    lines = ["| recipe | target | measured (UTC) | machine | load average (max) | artifacts | file |",
             "|---|---|---|---|---:|---:|---|"]
    for key, doc in docs.items():
        m, load = doc["machine"], doc.get("load") or {}
        lines.append(f"| {doc['recipe']['name']} | {doc['target']['name']} | {doc['date'][:16].replace('T', ' ')} | "
                     f"{_cpu(m)}, {m.get('cores', '?')} cores | {_f(load.get('load1_max'), '.1f')} | "
                     f"{len(doc['artifacts'])} | [{key}.json](measured/{key}.json) |")
    return "\n".join(lines) + "\n"


def table(key: str, doc: dict) -> str:
    """A measured file as a Markdown table, with where and when it was measured and the settings behind it."""
    lines = [_wrap(f"Measured in the run of {where(doc)}; {_settings_line(doc)} From {_source(key, doc)}."), "",
             "| artifact | runtime | precision | size KB | accuracy | top-1 agreement | max abs diff | p50 ms | p90 ms "
             "| speed-up [interval] |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_row(a) for a in doc["artifacts"]]
    p = doc.get("pruning")
    if p:
        lines += ["", _wrap(f"Pruning: MACs {_f(p.get('macs_before'), ',d')} -> {_f(p.get('macs_after'), ',d')}, "
                  f"parameters {_f(p.get('params_before'), ',d')} -> {_f(p.get('params_after'), ',d')}; "
                  f"accuracy right after pruning {_f(p.get('accuracy_before_finetune'), '.4f')}, "
                  f"after the distilled fine-tune {_f(p.get('accuracy'), '.4f')}.")]
    ran = [st for st in doc.get("stages") or [] if "seconds" in st and not st.get("skipped")]
    if ran:
        lines += ["", _wrap("Stage seconds in that run (to_executorch runs beside to_onnx and to_tflite): " + ", ".join(
            f"{st['name']} {st['seconds']:.0f}{' (cached)' if st.get('cached') else ''}" for st in ran) + ".")]
    warnings = (doc.get("load") or {}).get("warnings") or []
    lines += ["", *(_wrap(f"Warning at the time: {w}.") for w in warnings)] if warnings else []
    return "\n".join(lines) + "\n"


def _settings_line(doc: dict) -> str:
    s = doc.get("settings") or {}
    b, r = s.get("benchmark") or {}, doc["recipe"]
    return (f"recipe {r['name']} {r.get('version', '')} (sha256 {r.get('sha256', '?')[:12]}), "
            f"{_f(s.get('epochs'), 'g')} epoch(s), evaluated on {_f(s.get('eval_samples'), ',d')} test images; "
            f"benchmark {_f(b.get('threads'), 'd')} thread(s), batch 1, {_f(b.get('warmup'), 'd')} warm-up + "
            f"{_f(b.get('runs'), 'd')} timed runs per round, {_f(b.get('rounds'), 'd')} rounds (stopped: "
            f"{b.get('stopped', '-')}), p50/p90 from the median round; speed-up over the fp32 file of the same "
            "runtime, with its bootstrap interval over rounds.")


def _row(a: dict) -> str:
    par, lat, sp = a.get("parity") or {}, a.get("latency") or {}, a.get("speedup")
    speed = f"{sp['ratio']:.2f}x [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}] vs {sp['baseline']}" if sp else "-"
    return (f"| {a['name']} | {a.get('runtime') or '-'} | {a.get('precision', '-')} | "
            f"{_f(a.get('size_bytes', 0) / 1024, '.1f')} | {_f(a.get('accuracy'), '.4f')} | "
            f"{_f(par.get('top1_agreement'), '.4f')} | {_f(par.get('max_abs_diff'), '.1e')} | "
            f"{_f(lat.get('p50_ms'), '.3f')} | {_f(lat.get('p90_ms'), '.3f')} | {speed} |")


def glance(key: str, doc: dict) -> str:
    """One paragraph: fp32 parity, then each runtime's fastest artifact against its fp32 baseline."""
    arts = {a["name"]: a for a in doc["artifacts"]}
    s = doc.get("settings") or {}
    fp32 = [a["parity"]["top1_agreement"] for a in doc["artifacts"] if a.get("precision") == "fp32"
            and (a.get("parity") or {}).get("top1_agreement") is not None]
    parts = [f"Measured in the run of {where(doc)}. fp32 accuracy {_f(s.get('fp32_accuracy'), '.4f')} on "
             f"{_f(s.get('eval_samples'), ',d')} test images"
             + (f"; every fp32 file agrees with its reference on at least {min(fp32):.4f} of top-1 labels" if fp32
                else "") + "."]
    best: dict[str, dict] = {}
    for a in doc["artifacts"]:
        r = a.get("runtime")
        if a.get("speedup") and (r not in best or a["speedup"]["ratio"] > best[r]["speedup"]["ratio"]):
            best[r] = a
    for r, a in best.items():
        base, sp = arts.get(a["speedup"]["baseline"], {}), a["speedup"]
        parts.append(f"{_RUNTIMES.get(r, r)}: `{a['name']}` is {_f(a.get('size_bytes', 0) / 1024, '.0f')} KB against "
                     f"{_f(base.get('size_bytes', 0) / 1024, '.0f')} KB for `{sp['baseline']}`, accuracy "
                     f"{_f(a.get('accuracy'), '.4f')} against {_f(base.get('accuracy'), '.4f')}, p50 "
                     f"{_f((a.get('latency') or {}).get('p50_ms'), '.3f')} ms against "
                     f"{_f((base.get('latency') or {}).get('p50_ms'), '.3f')} ms, {sp['ratio']:.2f}x "
                     f"({_f(100 * sp['confidence'] if 'confidence' in sp else None, '.0f')}% interval "
                     f"{sp['ci_low']:.2f}-{sp['ci_high']:.2f}x).")
    parts.append(f"From {_source(key, doc)}.")
    return _wrap(" ".join(parts)) + "\n"
