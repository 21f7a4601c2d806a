"""Which XNNPACK microkernels LiteRT and ExecuTorch run for EfficientNet-Lite0's convolutions, fp32 and int8
(`make evidence-int8-kernels`).

Each layer (pipeline/evidence/single_layer.py: one-op programs, LiteRT through TensorFlow's converter, ExecuTorch
through the pipeline's PT2E and XNNPACK lowering) runs in a child process that loads it, warms up and invokes it,
one thread, twice over:
- under callgrind, collecting inside the runtime's invoke function only (`--toggle-collect`) and dumping after each
  invoke (`--dump-after`): instructions per invoke (Ir), the same on a busy or an idle machine, and the hottest
  functions. Valgrind's virtual CPU has no AVX-512 (it cannot run those instructions), so XNNPACK picks its kernels
  for an AVX2 machine there: the counts are of those kernels, not of the ones this CPU runs natively.
- under `perf record` (cpu-clock samples, started by the child itself after warm-up, so only invokes are sampled):
  the kernels this CPU runs natively. Time shares move a little with machine load; which code is hot does not.
Hot code is named by its symbol where the wheel keeps one; ExecuTorch's XNNPACK keeps its microkernels' symbols
hidden, so for every run the executed addresses of the runtime's XNNPACK object are disassembled (objdump, at the
file offsets /proc/self/maps gives) and weighted by their Ir or samples: the share of executed instructions that
are `vpdpbusd` (AVX512-VNNI or AVX-VNNI int8 dot products), on zmm (512-bit), ymm (256-bit) or xmm registers.

    python -m pipeline.evidence.int8_kernels build/evidence/int8_kernels.json
"""

from __future__ import annotations

import argparse
import bisect
import functools
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes, atomic_write_json
from pipeline.core.proc import python_module, venv_env
from pipeline.core.proc import run as run_process
from pipeline.core.proc import start as start_process
from pipeline.evidence.callgrind_file import read_dump
from pipeline.evidence.single_layer import ConvLayer

# EfficientNet-Lite0's costliest depthwise shapes at 224x224 and two of its 1x1 projections (no activation)
LAYERS = (ConvLayer(28, 240, None, 5, 1), ConvLayer(56, 144, None, 3, 1),
          ConvLayer(28, 240, 40, 1, 1, relu6=False), ConvLayer(14, 480, 80, 1, 1, relu6=False))
RUNTIMES = ("litert", "executorch")
PERF_SECONDS = 3.0  # of invokes sampled per program: 12k samples at 4 kHz
# the C++ function one Python invoke enters once, and the shared object that holds each wheel's XNNPACK
INVOKE_FUNCTION = {"litert": "tflite::Subgraph::Invoke()", "executorch": "executorch::runtime::Method::execute()"}
XNNPACK_OBJECT = {"litert": "libpywrap_litert_common.so", "executorch": "libexecutorch_backend_xnnpack.so"}


def _invoker(runtime: str, model: Path) -> Callable[[], object]:
    """A no-argument callable that runs the program once on a fixed input, one thread."""
    import numpy as np

    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(model), num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        rng = np.random.default_rng(0)
        interpreter.set_tensor(detail["index"], rng.integers(-100, 100, detail["shape"]).astype(detail["dtype"]))
        return interpreter.invoke
    import torch

    from pipeline.runtimes.executorch_session import portable_lib, set_threads

    set_threads(1)
    torch.set_num_threads(1)  # torch's OpenMP workers would otherwise spin beside the invokes
    method = portable_lib._load_program(str(model), enable_etdump=False, debug_buffer_size=0).load_method("forward")
    shape = json.loads(model.with_suffix(".shape.json").read_text())
    x = 6 * torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    return lambda: method([x])


def child(runtime: str, model: Path, warmup: int, runs: int, maps_out: Path, perf_out: Path | None) -> None:
    """Load, warm up, invoke `runs` times (under `perf record` of this process when `perf_out`: at least `runs` and
    for at least PERF_SECONDS), save the maps."""
    seconds = PERF_SECONDS if perf_out is not None else 0.0
    invoke = _invoker(runtime, model)
    for _ in range(warmup):
        invoke()
    perf = None
    if perf_out is not None:
        cmd = ["perf", "record", "-q", "-F", "4000", "-p", str(os.getpid()), "-o", str(perf_out)]
        perf = start_process(cmd, what="perf record", log=perf_out.with_suffix(".log"))
        time.sleep(1.0)  # perf attaches asynchronously
    deadline = time.perf_counter() + seconds
    for done in range(1 << 30):
        invoke()
        if done + 1 >= runs and time.perf_counter() >= deadline:
            break
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    maps_out.write_text(Path("/proc/self/maps").read_text())


def _bases(maps: str) -> dict[str, int]:
    """{object path: the address its file offset 0 is mapped at}."""
    out = {}
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/") and int(fields[2], 16) == 0:
            out.setdefault(fields[5], int(fields[0].split("-")[0], 16))
    return out


def _disassemble(obj: str, start: int, stop: int) -> dict[int, str]:
    """{file address: 'mnemonic operands'} of the instructions in [start, stop)."""
    out = run_process(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start:#x}",
                       f"--stop-address={stop:#x}", obj], what="objdump").stdout.decode()
    code = {}
    for line in out.splitlines():
        match = re.match(r"^\s*([0-9a-f]+):\s+(\S.*)$", line)
        if match:
            code[int(match.group(1), 16)] = match.group(2).strip()
    return code


def _isa_class(instruction: str) -> str:
    if instruction.startswith(("vpdpbusd", "vpdpwssd")):
        return "vpdpbusd"
    for register in ("zmm", "ymm", "xmm"):
        if register in instruction:
            return register
    return "scalar"


def isa_mix(weights: Counter, obj: str, base: int) -> dict:
    """Share of weighted executed instructions at runtime addresses `weights` in `obj` per class (vpdpbusd, zmm,
    ymm, xmm, scalar), the share that moves vector registers to or from the stack (spills: compiler-dependent), and
    the top mnemonics; addresses are disassembled in runs of nearby code."""
    addresses = sorted(a - base for a in weights)
    code: dict[int, str] = {}
    start = prev = addresses[0] if addresses else 0
    for a in [*addresses[1:], None]:
        if a is None or a - prev > 4096:
            code.update(_disassemble(obj, start, prev + 16))
            start = a if a is not None else 0
        prev = a if a is not None else prev
    classes, mnemonics, spills = Counter(), Counter(), 0
    for address, weight in weights.items():
        instruction = code.get(address - base, "?")
        classes[_isa_class(instruction)] += weight
        mnemonics[instruction.split()[0]] += weight
        spills += weight if "mm" in instruction and "(%rsp)" in instruction else 0
    total = sum(classes.values()) or 1
    return {"shares": {c: round(classes[c] / total, 4) for c in ("vpdpbusd", "zmm", "ymm", "xmm", "scalar")},
            "vector_stack_share": round(spills / total, 4),
            "top_mnemonics": [[m, round(w / total, 4)] for m, w in mnemonics.most_common(8)]}


@functools.cache
def function_starts(obj: str) -> tuple[list[int], list[int]]:
    """Sorted (starts, ends) of the functions `obj`'s unwind table (.eh_frame) lists: their bounds where the wheel
    keeps no symbol for them."""
    out = run_process(["readelf", "--debug-dump=frames", obj], what="readelf", timeout=300).stdout.decode()
    ranges = sorted((int(a, 16), int(b, 16)) for a, b in re.findall(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", out))
    return [a for a, _ in ranges], [b for _, b in ranges]


def _function_at(obj: str, address: int) -> str:
    """Callgrind's name for a function without a symbol: its start address, 0x and 16 hex digits."""
    starts, ends = function_starts(obj)
    i = bisect.bisect_right(starts, address) - 1
    return f"0x{starts[i]:016x}" if i >= 0 and address < ends[i] else "[unknown]"


def _object_path(bases: dict[str, int], runtime: str) -> str:
    return next(p for p in bases if p.endswith(XNNPACK_OBJECT[runtime]))


def _child_cmd(runtime: str, model: Path, warmup: int, runs: int, maps: Path, perf: Path | None) -> list[str]:
    args = [runtime, str(model), str(warmup), str(runs), str(maps)] + ([str(perf)] if perf else [])
    return python_module("pipeline.evidence.int8_kernels", "--child", *args)


def callgrind(runtime: str, model: Path, work: Path, warmup: int = 3, runs: int = 3) -> dict:
    """Ir per invoke (each of `runs` invokes after `warmup`), the top functions and objects by self Ir in the last
    invoke, and the ISA mix of the hot code in the runtime's XNNPACK object."""
    out, maps = work / f"{model.stem}.callgrind", work / f"{model.stem}.callgrind.maps"
    cmd = ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--dump-line=no", "--compress-strings=yes",
           f"--toggle-collect={INVOKE_FUNCTION[runtime]}", f"--dump-after={INVOKE_FUNCTION[runtime]}",
           f"--callgrind-out-file={out}", *_child_cmd(runtime, model, warmup, runs, maps, None)]
    run_process(["nice", "-n", "19", *cmd], what="callgrind", timeout=3600, env=venv_env())
    parts = sorted(work.glob(f"{out.name}.*[0-9]"), key=lambda p: int(p.suffix[1:]))
    if len(parts) < warmup + runs:
        raise RuntimeError(f"callgrind wrote {len(parts)} dumps for {warmup + runs} invokes of {model.name}")
    dumps = [read_dump(p) for p in parts[warmup:warmup + runs]]
    last, bases = dumps[-1], _bases(maps.read_text())
    obj = _object_path(bases, runtime)
    by_object, by_function = Counter(), Counter()
    for (o, fn), ir in last.by_function.items():
        by_object[Path(o).name] += ir
        # callgrind names code without a symbol by a block's address: name it by its function's start, as perf does
        by_function[(o, _function_at(obj, int(fn, 16)) if o == obj and fn.startswith("0x") else fn)] += ir
    # callgrind writes addresses relative to the object's load address already: objdump's addresses
    weights = Counter({a: ir for (o, a), ir in last.by_address.items() if o == obj})
    return {"ir_per_invoke": [d.total for d in dumps],
            "top_functions": [[fn, Path(o).name, ir] for (o, fn), ir in by_function.most_common(5)],
            "top_objects": [[o, ir] for o, ir in by_object.most_common(5)],
            "xnnpack_object_ir": by_object[Path(obj).name], "hot_code": isa_mix(weights, obj, 0)}


def perf(runtime: str, model: Path, work: Path, warmup: int = 20, runs: int = 100) -> dict:
    """Native run: sample shares of the top symbols (perf's names, `[unknown]` where the wheel hides them) and the ISA
    mix of the sampled code in the runtime's XNNPACK object."""
    data, maps = work / f"{model.stem}.perf.data", work / f"{model.stem}.perf.maps"
    run_process(["nice", "-n", "19", *_child_cmd(runtime, model, warmup, runs, maps, data)], what="perf child",
                timeout=1800, env=venv_env())
    script = run_process(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"], what="perf script",
                         timeout=600).stdout.decode(errors="replace")
    bases = _bases(maps.read_text())
    obj = _object_path(bases, runtime)
    symbols, addresses = Counter(), Counter()
    for line in script.splitlines():
        match = re.match(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
        if not match:
            continue
        ip, symbol, dso = int(match.group(1), 16), re.sub(r"\+0x[0-9a-f]+$", "", match.group(2)), match.group(3)
        if Path(dso).name == Path(obj).name:
            addresses[ip] += 1
            symbol = _function_at(obj, ip - bases[obj]) if symbol == "[unknown]" else symbol
        symbols[(symbol, Path(dso).name)] += 1
    total = sum(symbols.values()) or 1
    return {"samples": sum(symbols.values()),
            "top_symbols": [[s, o, round(n / total, 4)] for (s, o), n in symbols.most_common(5)],
            "xnnpack_object_share": round(sum(addresses.values()) / total, 4),
            "hot_code": isa_mix(addresses, obj, bases[obj]) if addresses else {}}


def _programs(layer: ConvLayer, work: Path) -> dict[tuple[str, str], Path]:
    from pipeline.evidence.single_layer import calibration, executorch_programs, litert_models

    paths = {}
    stem = re.sub(r"[^0-9a-z]+", "-", layer.name.lower()).strip("-")
    for runtime, programs, suffix in (("litert", litert_models(layer), ".tflite"),
                                      ("executorch", executorch_programs(layer), ".pte")):
        for precision, program in programs.items():
            path = work / f"{stem}-{runtime}-{precision}{suffix}"
            path.write_bytes(program)
            path.with_suffix(".shape.json").write_text(json.dumps(list(calibration(layer, 1).shape)))
            paths[(runtime, precision)] = path
    return paths


def measure(work: Path, layers: tuple[ConvLayer, ...] = LAYERS, runtimes: tuple[str, ...] = RUNTIMES,
            with_perf: bool = True, save: Callable[[dict], None] | None = None) -> dict:
    """Every layer x runtime x precision under callgrind (and perf): see the module docstring. `save` gets the
    result so far after every row (a long run keeps what it measured)."""
    rows = []
    result = {"rows": rows, "cpu_flags": _cpu_flags(), "versions": _versions(), "compilers": _compilers(),
              "how": "one thread; callgrind: Ir of each of 3 invokes after 3 warm-up invokes, collected inside "
                     f"{' / '.join(INVOKE_FUNCTION.values())} only (valgrind's CPU: no AVX-512); perf: cpu-clock "
                     f"samples at 4 kHz over {PERF_SECONDS:g} s of invokes after 20 warm-ups, native CPU"}
    for layer in layers:
        paths = _programs(layer, work)
        for (runtime, precision), path in paths.items():
            if runtime not in runtimes:
                continue
            row = {"layer": layer.name, "runtime": runtime, "precision": precision,
                   "callgrind": callgrind(runtime, path, work)}
            if with_perf:
                row["perf"] = perf(runtime, path, work)
            rows.append(row)
            print(f"{layer.name} {runtime} {precision}: {row['callgrind']['ir_per_invoke']} Ir", flush=True)
            if save is not None:
                save(result)
    return result


def _compilers() -> dict[str, str]:
    """{runtime: the compiler its XNNPACK object's .comment section names} (GCC and clang allocate registers
    differently in the same intrinsics kernel)."""
    import importlib.util

    out = {}
    for runtime, package in (("litert", "ai_edge_litert"), ("executorch", "executorch")):
        root = Path(list(importlib.util.find_spec(package).submodule_search_locations)[0])
        obj = next(root.rglob(XNNPACK_OBJECT[runtime]))
        text = run_process(["readelf", "-p", ".comment", str(obj)], what="readelf").stdout.decode()
        out[runtime] = "; ".join(re.findall(r"\]\s+(.+)", text))
    return out


def _cpu_flags() -> list[str]:
    flags = next((ln.split(":", 1)[1].split() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "avx_vnni", "avx2", "fma")))


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    valgrind = run_process(["valgrind", "--version"], what="valgrind").stdout.decode().strip()
    return {"ai-edge-litert": version("ai-edge-litert"), "executorch": version("executorch"), "valgrind": valgrind}


def _top_kernel(hot: list) -> str:
    """The hottest function and its share or Ir; hidden ones (0x...) are named by their start in the wheel's .so."""
    if not hot:
        return "-"
    name, _, amount = hot[0]
    return f"{name} ({amount:.0%})" if isinstance(amount, float) else f"{name} ({amount / 1e6:.2f} M)"


def _mix(hot: dict) -> str:
    shares = hot.get("shares", {})
    mix = ", ".join(f"{c} {shares[c]:.0%}" for c in ("vpdpbusd", "zmm", "ymm", "xmm") if shares.get(c)) or "-"
    return f"{mix}; spills {hot['vector_stack_share']:.0%}" if "vector_stack_share" in hot else mix


def markdown(result: dict) -> str:
    """One row per layer x runtime x precision: callgrind Ir per invoke and kernel, perf's native kernel and ISA."""
    lines = [f"CPU flags: {' '.join(result['cpu_flags'])}; {result['versions']}; XNNPACK built by "
             f"{result['compilers']}; {result['how']}.", "",
             "| layer | runtime | precision | Ir per invoke (callgrind) | top function under callgrind (Ir) "
             "| hot XNNPACK code under callgrind | top function native (perf share) | hot XNNPACK code native (perf) "
             "| VNNI natively |",
             "|---|---|---|---:|---|---|---|---|---|"]
    for r in result["rows"]:
        cg, pf = r["callgrind"], r.get("perf", {})
        ir = sorted(cg["ir_per_invoke"])[len(cg["ir_per_invoke"]) // 2]
        vnni = "yes" if pf.get("hot_code", {}).get("shares", {}).get("vpdpbusd") else ("no" if pf else "-")
        lines.append(f"| {r['layer']} | {r['runtime']} | {r['precision']} | {ir / 1e6:.2f} M | "
                     f"{_top_kernel(cg['top_functions'])} | {_mix(cg['hot_code'])} | "
                     f"{_top_kernel(pf.get('top_symbols', []))} | {_mix(pf.get('hot_code', {}))} | {vnni} |")
    return "\n".join(lines)


def _save(result: dict, out: Path) -> None:
    atomic_write_json(out, result)
    atomic_write_bytes(out.with_suffix(".md"), (markdown(result) + "\n").encode())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        runtime, model, warmup, runs, maps, *perf_out = sys.argv[2:]
        child(runtime, Path(model), int(warmup), int(runs), Path(maps), Path(perf_out[0]) if perf_out else None)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="JSON path; the markdown table goes beside it (.md)")
    parser.add_argument("--no-perf", action="store_true", help="callgrind only (where perf cannot sample)")
    parser.add_argument("--table", action="store_true", help="rebuild the markdown from the JSON, measure nothing")
    args = parser.parse_args()
    if args.table:
        _save(json.loads(args.out.read_text()), args.out)
        print(args.out.with_suffix(".md").read_text())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), with_perf=not args.no_perf, save=lambda r: _save(r, args.out))
    _save(result, args.out)
    print(markdown(result))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
