"""The examples under docs/examples/ run from the CLI as a user would, cut down to a few epochs: every artifact is
built, evaluated output by output against its reference and its fp32 model, and timed, and the report names the
recipe's metric."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, cli, write_target

EXAMPLES = ROOT / "docs" / "examples"
# Every artifact the host target builds, for a recipe that prunes and quantizes by PTQ and QAT.
EXPECTED = {("torch", "fp32", "none"), ("pt2", "int8", "ptq"), ("pt2", "int8", "qat"), ("onnx", "fp32", "none"),
            ("tflite", "fp32", "none"), ("tflite", "fp16", "none"), ("tflite", "int8", "ptq"),
            ("tflite", "int8", "qat"), ("pte", "fp32", "none"), ("pte", "int8", "ptq"), ("pte", "int8", "qat")}


def _run(recipe: Path, tmp_path: Path, *sets: str) -> tuple[dict, dict, Path]:
    """One run of an example recipe on the host (few benchmark runs), cut down by `sets`: (report, manifest,
    evaluate's cache folder). --no-gates: a few epochs leave the metric's drop after pruning and int8 near its limit
    (measured: 1.25 points against 1.0 for the sensor model), so the tests check the other gates themselves."""
    build = tmp_path / "build"
    args = [a for s in sets for a in ("--set", s)]
    proc = cli("run", "--recipe", str(recipe), "--target", str(write_target(tmp_path, runs=5)),
               "--build-dir", str(build), "--no-explain", "--no-gates", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((build / "runs").iterdir())
    evaluated = list((build / "cache" / "evaluate").iterdir())
    assert len(evaluated) == 1
    return (json.loads((run_dir / "report.json").read_text()), json.loads((run_dir / "manifest.json").read_text()),
            evaluated[0])


def _short_training(violation: str) -> bool:
    """A violation that a few epochs of fine-tuning explain, and the cut-down runs may show: the metric's drop
    against the fp32 model after pruning or int8, and a QAT model's agreement with the fp32 one (measured with half
    an epoch of QAT: 0.87 against 0.9). Every artifact's fidelity to its own reference is still gated."""
    return violation.endswith(("(prune.max_accuracy_drop)", "(quantize.max_accuracy_drop)",
                               "(tolerances.int8.min_fp32_agreement)"))


def _outputs_of(folder: Path, name: str) -> list[np.ndarray]:
    several = folder / f"outputs_{name}.npz"
    if several.is_file():
        with np.load(several) as d:
            return [d[k] for k in sorted(d.files, key=lambda k: int(k.split("_")[1]))]
    return [np.load(folder / f"logits_{name}.npy")]


def _check_every_artifact(report: dict, evaluated: Path, outputs: list[str]) -> list[dict]:
    """Every artifact built, on disk, timed, and compared output by output with its reference and its fp32 model;
    every output of every artifact changes from sample to sample."""
    rows = report["artifacts"]
    kinds = {(r["format"], r["precision"], r["quantization"]) for r in rows}
    assert EXPECTED <= kinds, EXPECTED - kinds
    assert any(r["pruned"] for r in rows) and any(not r["pruned"] for r in rows)
    for r in rows:
        assert Path(r["path"]).is_file(), r["name"]
        # every gate on fidelity to its own reference (SQNR, cosine, agreement, max diff) passes
        assert all(_short_training(v) for v in r["violations"]), r["violations"]
        timed = r["latency_ms"] is not None and r["latency_ms"]["p50"] > 0
        assert timed or (r["format"] == "pt2" and r["name"] in report["benchmark"]["not_timed"]), r["name"]
        assert sorted(r["output_fidelity"]) == sorted(outputs), r["name"]
        for row in r["output_fidelity"].values():
            assert math.isfinite(row["cosine"]) and row["sqnr_db"] is not None, r["name"]
            if r["precision"] == "fp32" and r["format"] in ("onnx", "tflite", "pte"):
                assert row["sqnr_db"] > 60, r["name"]  # measured 130-140 dB: the same float arithmetic
        if r["format"] != "torch":  # the fp32 PyTorch models are their own fp32 reference
            assert sorted(r["against_fp32"]["outputs"]) == sorted(outputs), r["name"]
        got = _outputs_of(evaluated, r["name"])
        assert len(got) == len(outputs), r["name"]
        for o in got:
            assert len(o) > 1 and np.abs(o - o[:1]).max() > 1e-3 * max(1.0, float(np.abs(o).max())), r["name"]
    return rows


@pytest.mark.slow
def test_the_sensor_classifier_example_builds_every_artifact_from_the_aeon_basicmotions_windows(tmp_path):
    npz = tmp_path / "basic_motions.npz"
    prepared = subprocess.run([sys.executable, str(EXAMPLES / "sensor_activity" / "basic_motions.py"), str(npz)],
                              capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    with np.load(npz) as d:
        assert d["train_motion"].shape == (240, 6, 50) and d["val_motion"].shape == (240, 6, 50)
        assert np.bincount(d["val_labels"]).tolist() == [60, 60, 60, 60]
    report, manifest, evaluated = _run(EXAMPLES / "sensor_activity" / "basic-motions.toml", tmp_path,
                                       f"data.path={json.dumps(str(npz))}", "train.epochs=10",
                                       "prune.finetune.epochs=3", "quantize.qat.epochs=1")
    assert all(_short_training(v) for v in report["gates"]["violations"])
    assert report["evaluation"]["metric"]["name"] == "top1"
    assert report["evaluation"]["samples"] == 240
    assert report["evaluation"]["fp32_accuracy"] > 0.8  # four classes: chance is 0.25
    rows = _check_every_artifact(report, evaluated, ["output"])
    assert report["pruning"]["after"]["macs"] < report["pruning"]["before"]["macs"]
    assert min(r["accuracy"] for r in rows) > 0.8


@pytest.mark.slow
def test_the_picture_and_profile_example_scores_both_outputs_of_every_artifact_by_the_users_macro_f1(tmp_path):
    report, manifest, evaluated = _run(EXAMPLES / "image_with_metadata" / "fashion-profile.toml", tmp_path,
                                       "train.max_train_samples=6000", "train.epochs=2", "data.eval_samples=1000",
                                       "prune.finetune.epochs=0.5", "quantize.qat.epochs=0.5")
    assert all(_short_training(v) for v in report["gates"]["violations"])
    assert report["evaluation"]["metric"] == {"name": "score", "higher_is_better": True, "unit": "score units"}
    assert report["evaluation"]["samples"] == 1000
    rows = _check_every_artifact(report, evaluated, ["scores", "embedding"])
    assert report["pruning"]["after"]["macs"] < report["pruning"]["before"]["macs"]
    # the user's macro-F1, recomputed from the fp32 model's saved outputs: the report's number is that metric
    sys.path.insert(0, str(EXAMPLES / "image_with_metadata"))
    try:
        import fashion_profile
        import macro_f1
    finally:
        sys.path.pop(0)
    labels = fashion_profile.split("t10k", 1000)[2]
    scores, embedding = _outputs_of(evaluated, "torch-fp32")
    expected = macro_f1.score({"scores": scores, "embedding": embedding}, labels)
    assert report["evaluation"]["fp32_accuracy"] == pytest.approx(expected)
    assert expected != pytest.approx(float((scores.argmax(1) == labels).mean()))  # not top-1 under another name
    assert report["evaluation"]["fp32_accuracy"] > 0.6  # ten classes: chance is about 0.1
    assert min(r["accuracy"] for r in rows) > 0.6
