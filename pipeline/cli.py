"""Command line: `python -m pipeline` or `phone-pipeline`."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from pipeline.core.errors import StageCrash, UserError, disk_full, message_line, shown

DEFAULT_RECIPE = "fashion-mnist-mobilenetv2"

EXAMPLES = """examples:
  phone-pipeline run                                   # default recipe on the host target
  phone-pipeline run --recipe efficientnet-lite0 --target host
  phone-pipeline run --from benchmark                  # rerun benchmark and report only
  phone-pipeline run --only evaluate                   # just evaluation (earlier stages must be cached)
  phone-pipeline init --model my_net.py:build --data ./pictures --out my.toml   # your own model and data
  phone-pipeline run --record                          # ... and write measured/<recipe>__<target>.json
  phone-pipeline readme                                # the README's measured sections from measured/*.json
  phone-pipeline stages                                # what each stage produces
  phone-pipeline targets                               # the devices in targets/
  phone-pipeline report build/runs/fashion-mnist-mobilenetv2__host   # rebuild the report, run nothing
  phone-pipeline debug build/runs/fashion-mnist-mobilenetv2__host tflite-pruned-int8-ptq   # which layer broke it?
  phone-pipeline profile build/runs/efficientnet-lite0__host pte-int8-ptq   # where does its time go?
  phone-pipeline release --target host                 # run (cached) and bundle; prints the .tar.gz path
  phone-pipeline verify build/release/fashion-mnist-mobilenetv2-0.1.0-host.tar.gz
"""

RUN_RECIPE_HELP = ("the recipe the run was made with (name or .toml path), to rebuild its model and data; default: "
                   "the bundled recipe the manifest names, if unchanged (a run folder never chooses code to import)")


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.core import log
    from pipeline.debug import explain_gate_failures
    from pipeline.engine import runner
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.files import parse_overrides
    from pipeline.recipe.targets import load_target

    log.setup(args.verbose)
    sets = parse_overrides(args.set, "--set")
    target_sets = parse_overrides(args.target_set, "--target-set")
    recipe, target = load_recipe(args.recipe, sets), load_target(args.target, target_sets)
    if args.serial:  # another phone of the same model: the target's settings, this serial
        target = replace(target, data={**target.data, "device": {**target.data["device"], "serial": args.serial}})
    only = tuple(s for s in (args.only or "").split(",") if s)
    opts = runner.RunOptions(build_dir=Path(args.build_dir), from_stage=args.from_stage, only=only,
                             force=args.force, no_gates=args.no_gates, threads=args.threads,
                             explain=None if args.no_explain else explain_gate_failures,
                             run_dir=Path(args.run_dir) if args.run_dir else None,
                             overrides={"recipe": sets, "target": target_sets})
    if args.dry_run:
        print(runner.dry_run(recipe, target, opts).describe())
        return 0
    if args.record:  # a folder that cannot take the file is refused before the run, not after it
        from pipeline.report.measured import check_out_dir

        check_out_dir(_measured_dir(args))
    out = runner.run(recipe, target, opts)
    report = out / "report.md"
    print(report if report.exists() else out / "manifest.json")
    if args.record:
        _cmd_record(argparse.Namespace(run_dir=str(out), measured_dir=args.measured_dir))
    return 0


def _measured_dir(args: argparse.Namespace) -> Path:
    from pipeline.report.measured import MEASURED_DIR

    return Path(args.measured_dir) if args.measured_dir else MEASURED_DIR


def _cmd_record(args: argparse.Namespace) -> int:
    from pipeline.report.measured import record

    print(record(Path(args.run_dir), _measured_dir(args)))
    return 0


def _cmd_readme(args: argparse.Namespace) -> int:
    from pipeline.report import measured_readme

    readme, folder = Path(args.readme) if args.readme else measured_readme.README, _measured_dir(args)
    if args.check:
        stale = measured_readme.check(readme, folder)
        if stale:
            print(f"error: {shown(readme)}: section '{shown(stale[0], 60)}' differs from {shown(folder)}/ "
                  "(hand-edited, or a file was recorded since); run `phone-pipeline readme`", file=sys.stderr)
            return 1
        return 0
    changed = measured_readme.write(readme, folder)
    print(f"{shown(readme)}: {len(changed)} section(s) rewritten{': ' + ', '.join(changed) if changed else ''}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from pipeline.starter.recipe import write

    out = write(args.model, args.data, Path(args.out), weights=args.weights, force=args.force)
    print(f"wrote {out}; run it with: phone-pipeline run --recipe {out}")
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    from pipeline.stages import STAGES

    for s in STAGES:
        needs = ", ".join(s.needs) or "-"
        print(f"{s.name:14} {s.produces}  (reads: {needs}{'' if s.cached else '; not cached'})")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from pipeline.recipe.files import TARGETS_DIR, list_configs
    from pipeline.recipe.targets import load_target

    for path in list_configs(TARGETS_DIR):
        t = load_target(str(path))
        d = t.data["device"]
        print(f"{t.name:16} {d['kind']:5} {t.data['target']['description']}")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.files import RECIPES_DIR, list_configs

    for path in list_configs(RECIPES_DIR):
        r = load_recipe(str(path))
        print(f"{path.stem:28} {r.data['recipe']['description']}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import run_report as report

    run_dir = Path(args.run_dir)
    if not (run_dir / "manifest.json").exists():
        raise UserError(f"{run_dir}: no manifest.json here; give a run folder such as build/runs/<recipe>__<target>")
    print(report.write(run_dir))
    return 0


def _cmd_debug(args: argparse.Namespace) -> int:
    import json

    from pipeline.debug import debug

    page = debug(Path(args.run_dir), args.artifact, samples=args.samples, min_sqnr_db=args.min_sqnr,
                 against=args.against, recipe=args.recipe)
    result = json.loads(page.with_suffix(".json").read_text())
    first, worst, sqnr = result["first_divergent_layer"], result["worst_layer"], result["worst_sqnr_db"]
    if (page.parent.parent / "report.json").exists():
        from pipeline.report import run_report as report

        report.write(page.parent.parent)  # the report links the page
    print(f"{args.artifact}: {len(result['layers'])} layers compared on {result['samples']} samples; "
          f"first below {result['min_sqnr_db']:g} dB: {first or 'none'}; worst: {worst or '-'} "
          f"({sqnr if isinstance(sqnr, str) or sqnr is None else round(sqnr, 1)} dB)")
    print(page)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from pipeline.profile import profile

    page, result = profile(Path(args.run_dir), args.artifact, runs=args.runs, threads=args.threads,
                           recipe=args.recipe)
    if result["runtime"] == "executorch":
        top = ", ".join(f"{k['kernel']} {k['share']:.0%}" for k in result["kernels"][:3])
        print(f"{args.artifact}: execute p50 {result['execute_p50_ms']:.3f} ms over {result['runs']} runs, "
              f"{args.threads} thread(s); most time: {top}")
    else:
        print(f"{args.artifact}: {result['op_count']} operators, {result['integer_ops']} integer; no per-operator "
              "timing from LiteRT's Python API")
    if (page.parent.parent / "report.json").exists():
        from pipeline.report import run_report as report

        report.write(page.parent.parent)  # an int8 artifact that does not pay is quoted from its page
    print(page)
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from pipeline.release import archive

    archive.source_date_epoch()  # a bad SOURCE_DATE_EPOCH is refused before the run (and torch's import), not after

    from pipeline.core import log
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.targets import load_target
    from pipeline.release.make import release as make_release

    log.setup(args.verbose)
    recipe, target = load_recipe(args.recipe), load_target(args.target)
    release = make_release(recipe, target, Path(args.build_dir), Path(args.out) if args.out else None, args.threads,
                           search=args.search)
    print(f"bundle {release.directory} ships {', '.join(release.artifacts)}")
    print(release.archive)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from pipeline.core import log
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.targets import load_target
    from pipeline.search import SearchOptions, run_search

    log.setup(args.verbose)
    recipe, target = load_recipe(args.recipe), load_target(args.target)
    opts = SearchOptions(build_dir=Path(args.build_dir), workers=args.workers, trials=args.trials,
                         storage=args.storage, worker_index=args.worker_index)
    out = run_search(recipe, target, opts)
    if args.worker_index is None:
        print(out / "search.md")
    return 0


def _list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in _list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _cmd_bench_large(args: argparse.Namespace) -> int:
    from pipeline.core import log
    from pipeline.evidence import bench_large

    log.setup(args.verbose)
    settings = bench_large.Settings(models=args.models, size=args.size, prune=args.prune, runtimes=args.runtimes,
                                    rounds=args.rounds, runs=args.runs, warmup=args.warmup, gemm_n=args.gemm_size,
                                    out=args.out, rebuild=args.rebuild)
    print(bench_large.run(settings))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.release.verify import verify

    for line in verify(Path(args.bundle)).summary():
        print(line)
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    import shutil

    build = Path(args.build_dir)
    for sub in ("cache", "runs", "tmp"):
        shutil.rmtree(build / sub, ignore_errors=True)
    print(f"removed {build / 'cache'}, {build / 'runs'} and {build / 'tmp'}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed (must be >= 1)")
    return value


def _folder(text: str) -> Path:
    """An argparse type for a folder option: a path that is, or would lie under, a regular file is refused there, in
    one line naming the option (it would otherwise fail deep inside a stage at mkdir)."""
    from pipeline.core.errors import shown

    path = Path(text)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"lies under {shown(part)}, which is"
            raise argparse.ArgumentTypeError(f"{shown(text)} {where} a file, not a folder; give a folder (it is "
                                             "created if missing)")
    return path


class _OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line that names the command and the argument, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="phone-pipeline", description="Turn a PyTorch model into small, fast, "
                                "validated TFLite and ExecuTorch artifacts.", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the pipeline for a recipe and a target", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name (pipeline/recipes) or path to a .toml")
    r.add_argument("--target", default="host", help="target name (targets/) or path to a .toml")
    r.add_argument("--from", dest="from_stage", metavar="STAGE", help="rerun this stage and every later one")
    r.add_argument("--only", metavar="STAGE[,STAGE]", help="run only these stages (earlier ones must be cached)")
    r.add_argument("--force", action="store_true", help="ignore the cache and rerun everything")
    r.add_argument("--no-gates", action="store_true", help="finish the run and the report even if a gate fails")
    r.add_argument("--no-explain", action="store_true", help="no layer-by-layer page (debug) for the artifacts "
                   "that fail an accuracy or parity gate")
    r.add_argument("--dry-run", action="store_true", help="print the plan (each stage's cache key and whether it "
                   "runs, comes from the cache, runs in the background or does nothing, and why) and run nothing")
    r.add_argument("--threads", type=_positive_int,
                   help="torch threads for host work (default: the target's compute.threads)")
    r.add_argument("--build-dir", default="build", type=_folder,
                   help="where the cache and runs live (default: build)")
    r.add_argument("--serial", help="adb serial of the device (overrides the target's [device] serial)")
    r.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="change one recipe setting for this run, checked like the file's keys "
                        "(repeatable), e.g. --set prune.enabled=true --set prune.macs_factor=3.0")
    r.add_argument("--target-set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="change one target setting, e.g. --target-set benchmark.runs=50")
    r.add_argument("--run-dir", type=_folder,
                   help="where the manifest and report go (default: BUILD_DIR/runs/<recipe>__<target>)")
    r.add_argument("--record", action="store_true", help="after the run, write measured/<recipe>__<target>.json "
                   "from its report (see `record`)")
    r.add_argument("--measured-dir", help="where --record writes (default: measured/ "
                   "at the top of the repository)")
    r.add_argument("-v", "--verbose", action="store_true")
    r.set_defaults(func=_cmd_run)
    rec = sub.add_parser("record", help="write measured/<recipe>__<target>.json from a finished run folder's "
                         "report.json and manifest.json")
    rec.add_argument("run_dir")
    rec.add_argument("--measured-dir", help="where to write (default: measured/)")
    rec.set_defaults(func=_cmd_record)
    rme = sub.add_parser("readme", help="regenerate the README's measured sections from measured/*.json")
    rme.add_argument("--check", action="store_true", help="change nothing; exit 1 naming the first section that "
                     "differs from what the files give")
    rme.add_argument("--readme", help="the file (default: README.md)")
    rme.add_argument("--measured-dir", help="the measured files (default: measured/)")
    rme.set_defaults(func=_cmd_readme)
    ini = sub.add_parser("init", help="write a starter recipe for your own model and data (validated)")
    ini.add_argument("--model", required=True, help="file.py:build_fn, package.module:build_fn, geffnet:<arch>, "
                     "a bundled architecture, or an .onnx / .tflite file")
    ini.add_argument("--data", required=True, help="a folder with one sub-folder of pictures per class, a folder "
                     "of .npy arrays or an .npz archive, a loader file.py:function, or fashion-mnist / mnist")
    ini.add_argument("--out", required=True, help="the recipe file to write (.toml)")
    ini.add_argument("--weights", help="a state_dict or checkpoint (.pt) to load instead of training")
    ini.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    ini.set_defaults(func=_cmd_init)
    sub.add_parser("stages", help="list the stages in run order").set_defaults(func=_cmd_stages)
    sub.add_parser("targets", help="list the targets in targets/").set_defaults(func=_cmd_targets)
    sub.add_parser("recipes", help="list the bundled recipes").set_defaults(func=_cmd_recipes)
    rep = sub.add_parser("report", help="rebuild report.md/json/png from a run's manifest, running nothing")
    rep.add_argument("run_dir")
    rep.set_defaults(func=_cmd_report)
    dbg = sub.add_parser("debug", help="compare an artifact with its PyTorch model layer by layer: which layer "
                         "diverges (writes RUN_DIR/debug/ARTIFACT.md, .json, .png)")
    dbg.add_argument("run_dir")
    dbg.add_argument("artifact", help="an artifact name from the run's report, e.g. tflite-pruned-int8-ptq")
    dbg.add_argument("--samples", type=_positive_int, default=8, help="evaluation samples to compare on (default 8)")
    dbg.add_argument("--min-sqnr", type=float, metavar="DB", help="SQNR under which a layer has diverged "
                     "(default by precision: fp32 60, fp16 35, int8 15)")
    dbg.add_argument("--against", choices=("torch", "source"), default="torch", help="torch: the PyTorch model "
                     "(default); source: a TFLite file against the ONNX file it was converted from, every op they "
                     "share (convolutions, pools, concats, reshapes, softmax)")
    dbg.add_argument("--recipe", help=RUN_RECIPE_HELP)
    dbg.set_defaults(func=_cmd_debug)
    prof = sub.add_parser("profile", help="where an artifact's time goes, operator by operator: .pte with "
                          "ExecuTorch's ETDump, .tflite as LiteRT's op table (writes RUN_DIR/profile/ARTIFACT.md, "
                          ".json)")
    prof.add_argument("run_dir")
    prof.add_argument("artifact", help="a .pte or .tflite artifact name from the run's report, e.g. pte-int8-ptq")
    prof.add_argument("--runs", type=_positive_int, default=20, help="timed runs of a .pte (default 20)")
    prof.add_argument("--threads", type=_positive_int, default=1, help="XNNPACK threads (default 1)")
    prof.add_argument("--recipe", help=RUN_RECIPE_HELP)
    prof.set_defaults(func=_cmd_profile)
    rel = sub.add_parser("release", help="run the pipeline (cached), then bundle the chosen artifacts for a target")
    rel.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name (pipeline/recipes) or path to a .toml")
    rel.add_argument("--target", default="host", help="target name (targets/) or path to a .toml")
    rel.add_argument("--out", type=_folder, help="where bundles go (default: BUILD_DIR/release)")
    rel.add_argument("--threads", type=_positive_int, help="torch threads for host work (default: the target's)")
    rel.add_argument("--build-dir", default="build", type=_folder,
                     help="where the cache and runs live (default: build)")
    rel.add_argument("--search", action="store_true", help="ship the trial `phone-pipeline search` chose for "
                     "this recipe and target (its final run), instead of the recipe's own settings")
    rel.add_argument("-v", "--verbose", action="store_true")
    rel.set_defaults(func=_cmd_release)
    se = sub.add_parser("search", help="find the compression settings that run fastest on the target within the "
                        "accuracy limit ([search] in the recipe); every trial is measured, not estimated")
    se.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name (pipeline/recipes) or path to a .toml")
    se.add_argument("--target", default="host", help="target name (targets/) or path to a .toml")
    se.add_argument("--trials", type=_positive_int, help="trials in all (default: the recipe's search.trials)")
    se.add_argument("--workers", type=_positive_int, default=1, help="worker processes on this machine (default 1)")
    se.add_argument("--storage", help="the study's database URL, shared by workers on several machines "
                    "(default: sqlite:///BUILD_DIR/search/<recipe>__<target>/study.db)")
    se.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    se.add_argument("--build-dir", default="build", type=_folder,
                    help="where the cache, runs and searches live (default: build)")
    se.add_argument("-v", "--verbose", action="store_true")
    se.set_defaults(func=_cmd_search)

    bl = sub.add_parser("bench-large", help="EfficientNet-Lite0 and MobileNetV2 at 224x224, every compression "
                        "variant in LiteRT/ExecuTorch/ONNX Runtime, against a GEMM peak measured here")
    bl.add_argument("--models", type=_list, default=("efficientnet-lite0", "mobilenetv2-100"),
                    help="comma-separated: efficientnet-lite0, mobilenetv2-100 (default both)")
    bl.add_argument("--size", type=_positive_int, default=224, help="input height and width (default 224)")
    bl.add_argument("--prune", type=_ratios, default=(0.3, 0.5),
                    help="channel ratios to prune, comma-separated; '' for none (default 0.3,0.5)")
    bl.add_argument("--runtimes", type=_list, default=("litert", "executorch", "onnxruntime"),
                    help="comma-separated: litert, executorch, onnxruntime (default all)")
    bl.add_argument("--rounds", type=_positive_int, default=5, help="interleaved benchmark rounds (default 5)")
    bl.add_argument("--runs", type=_positive_int, default=50, help="timed invokes per process (default 50)")
    bl.add_argument("--warmup", type=_positive_int, default=5, help="untimed invokes first (default 5)")
    bl.add_argument("--gemm-size", type=_positive_int, default=2048, help="n of the n x n peak GEMMs (default 2048)")
    bl.add_argument("--out", default="build/bench-large", help="report.md, report.json and the built artifacts")
    bl.add_argument("--rebuild", action="store_true", help="rebuild artifacts an earlier run left in OUT/artifacts")
    bl.add_argument("-v", "--verbose", action="store_true")
    bl.set_defaults(func=_cmd_bench_large)

    ver = sub.add_parser("verify", help="check a release bundle (.tar.gz or folder): files, metadata, model outputs")
    ver.add_argument("bundle")
    ver.set_defaults(func=_cmd_verify)
    cl = sub.add_parser("clean", help="remove the stage cache, the runs and the temporary files (build/cache, "
                        "build/runs, build/tmp)")
    cl.add_argument("--build-dir", default="build")
    cl.set_defaults(func=_cmd_clean)
    return p


def main(argv: list[str] | None = None) -> int:
    # torchao tries to load CUDA-only kernels on import and prints failures; nothing here uses them.
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(message_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line and the traceback in a log file, exit 1
        full = disk_full(exc, _output_folders(args))
        if full is not None:  # a full disk is not a bug: one line, exit 2, where and how much is free
            where = f"stage {exc.stage}: " if isinstance(exc, StageCrash) else ""
            print(f"error: {where}{full}", file=sys.stderr)
            return full.exit_code
        build_dir = getattr(args, "build_dir", None)  # verify, report, debug...: no build dir, nothing in ./build
        return _internal_error(exc, Path(build_dir) / "logs" if build_dir else None)


def _output_folders(args: argparse.Namespace) -> dict[str, Path]:
    """The folders a command writes to, by the option that places them."""
    build = Path(getattr(args, "build_dir", None) or "build")
    folders = {"--build-dir": build} if hasattr(args, "build_dir") else {}
    if getattr(args, "command", "") == "release":
        folders["--out"] = Path(args.out) if args.out else build / "release"
    return folders


def _internal_error(exc: Exception, log_dir: Path | None) -> int:
    """The one error boundary: user mistakes are exit 2 (above); anything else is ours, exit 1, logged in full in
    `log_dir` (the command's BUILD_DIR/logs), else in the temp folder; the message names the log file."""
    import tempfile
    import time
    import traceback

    cause = exc.__cause__ if isinstance(exc, StageCrash) and exc.__cause__ else exc
    where = f"stage {exc.stage}" if isinstance(exc, StageCrash) else "phone-pipeline"
    text = "".join(traceback.format_exception(exc))
    log_path = None
    for folder in [*([log_dir] if log_dir else []), Path(tempfile.gettempdir())]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log_path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            log_path.write_text(text)
            break
        except OSError:
            log_path = None
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    print(f"error: {where} failed with an internal error ({type(cause).__name__}: {first}); "
          f"the traceback is in {log_path or 'nowhere (no writable folder)'}; please report it", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
