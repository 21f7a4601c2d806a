"""Any model, any task (issue 24): a keyword-spotting 1-D CNN with two inputs (MFCC frames, frame count) and two
outputs (class scores, embedding), on the real FSDD recordings through the user's own loader (dataset = "python"),
run from the CLI through every stage and artifact kind; every output of every artifact is compared with its
reference and with the fp32 model, and the outputs differ from sample to sample (else parity proves nothing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ROOT, cli, write_target

RECIPE = ROOT / "docs" / "examples" / "keyword_spotting" / "kws-python.toml"
QUICK = ("train.epochs=4", "prune.finetune.epochs=2", "quantize.qat.epochs=0.5", "data.calibration_samples=64",
         "data.eval_samples=300")


@pytest.fixture(scope="module")
def kws_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("kws")
    target = write_target(work, runs=10)
    sets = [a for kv in QUICK for a in ("--set", kv)]
    proc = cli("run", "--recipe", str(RECIPE), "--target", str(target), "--build-dir", str(work / "build"), *sets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = work / "build" / "runs" / "kws-fsdd-python__test-host"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    evaluate = next(s for s in manifest["stages"] if s["name"] == "evaluate")
    return {"build": work / "build", "report": json.loads((run_dir / "report.json").read_text()),
            "manifest": manifest, "evaluate": evaluate["data"], "md": (run_dir / "report.md").read_text()}


@pytest.mark.slow  # a whole pipeline run with training (minutes on 2 cores): make test-all
def test_every_artifact_of_a_two_input_two_output_model_is_built_and_compared_per_output(kws_run):
    names = {a["name"] for a in kws_run["report"]["artifacts"]}
    assert {"torch-fp32", "onnx-fp32", "tflite-fp32", "tflite-fp16", "pte-fp32", "torch-pruned-fp32",
            "tflite-pruned-int8-ptq", "tflite-pruned-int8-qat", "pte-pruned-int8-ptq", "pte-pruned-int8-qat"} <= names
    ev = kws_run["evaluate"]
    assert ev["outputs"] == ["scores", "embedding"] and ev["metric"]["name"] == "top1"
    for name, m in ev["metrics"].items():
        assert set(m["outputs"]) == {"scores", "embedding"}, name
        if not name.startswith("torch-"):  # the PyTorch fp32 models are the fp32 sources themselves
            assert set(m["against_fp32"]["outputs"]) == {"scores", "embedding"}, name
    fp32 = ev["metrics"]["tflite-fp32"]["outputs"]
    assert min(fp32["scores"]["sqnr_db"], fp32["embedding"]["sqnr_db"]) > 60  # fp32 conversions: rounding only
    assert ev["fp32_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert "## Outputs" in kws_run["md"] and "| artifact | scores | embedding |" in kws_run["md"]


@pytest.mark.slow
def test_every_artifact_records_both_inputs_and_both_outputs_in_the_models_order(kws_run):
    arts = [a for stage in kws_run["manifest"]["stages"] for a in stage["artifacts"]]
    assert len(arts) >= 12
    for art in arts:
        assert [t["name"] for t in art["inputs"]] == ["mfcc", "frames"], art["name"]
        assert [t["name"] for t in art["outputs"]] == ["scores", "embedding"], art["name"]
        shapes = [t["shape"][1:] for t in art["inputs"]]
        assert shapes == [[13, 32], [1]], (art["name"], shapes)  # onnx2tf kept the series (C, T): not a picture
        if art["format"] == "tflite" and art["precision"] == "int8":
            assert all(t["dtype"] == "int8" and t["quantization"]["scale"] > 0 for t in art["inputs"] + art["outputs"])


@pytest.mark.slow
def test_outputs_differ_per_input_so_the_parity_checks_can_fail(kws_run):
    cache = kws_run["build"] / "cache" / "evaluate"
    outs = np.load(next(cache.glob("*/outputs_tflite-pruned-int8-ptq.npz")))
    for key in outs.files:
        values = outs[key]
        assert float(values.std(0).mean()) > 1e-3, key
    scores = np.load(next(cache.glob("*/logits_torch-fp32.npy")))
    assert len(set(scores.argmax(1).tolist())) == 10  # every digit predicted somewhere: not a constant model
