"""Bundles of a model with two inputs and two outputs: the metadata lists every tensor, the samples are one .npy per
input, and `verify` runs every input and checks every output, naming the one that fails.

The bundle is made in seconds from a real XNNPACK .pte of tests/multi_tensor_models.py's two-input model (a (C, T)
series and a feature vector in; class scores and an embedding out), its outputs recorded by the child-process runner
that release and verify use, its metadata by the release's own builder and schema.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import android_refusal, cli
from multi_tensor_models import SERIES, VECTORS, lower_to_pte, two_input_model

from pipeline.artifacts.artifact import Artifact, sha256_file
from pipeline.artifacts.tensors import TensorSpec
from pipeline.core.errors import UserError
from pipeline.release import archive, checksums, samples
from pipeline.release import metadata as meta_doc
from pipeline.release.metadata_schema import validate_metadata
from pipeline.release.verify import verify

NAME = "two-in-two-out-0.1.0-host"
INPUTS = (TensorSpec("series", (1, *SERIES.shape[1:])), TensorSpec("vector", (1, *VECTORS.shape[1:])))
OUTPUTS = (TensorSpec("scores", (1, 5)), TensorSpec("embedding", (1, 12)))


def _record(path: Path) -> dict:
    """The manifest record of the .pte, as the pipeline writes it (inputs and outputs listed)."""
    art = Artifact("pte-fp32", str(path), "pte", "fp32", "", INPUTS[0].shape, inputs=INPUTS, outputs=OUTPUTS,
                   sha256=sha256_file(path), size_bytes=path.stat().st_size)
    return art.to_dict()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle") / NAME
    (root / "models").mkdir(parents=True)
    lower_to_pte(two_input_model(), [SERIES, VECTORS], root / "models/pte-fp32.pte")
    record = _record(root / "models/pte-fp32.pte")
    arrays = samples.write_arrays(root, [SERIES, VECTORS], ["series", "vector"])
    xs = [np.load(root / a["file"]) for a in arrays]
    ys = samples.outputs(meta_doc.to_artifact(record, root / "models/pte-fp32.pte"), xs)
    (root / samples.OUTPUTS_DIR).mkdir(parents=True)
    for k, y in enumerate(ys):
        (root / meta_doc.outputs_file(record, k)).write_bytes(samples.npy_bytes(y))
    inputs = meta_doc.Inputs(None, [{"label": None}] * len(SERIES), arrays)
    report = {"recipe": {"name": "two", "version": "0.1.0"}, "target": {"name": "host"}}
    manifest = {"recipe": {"sha256": "0" * 64}, "target": {"settings": {"device": {"kind": "host"}}}}
    meta = meta_doc.metadata(manifest, report, [record], [], inputs, (), {"pte-fp32": ys}, "the host")
    (root / "metadata.json").write_text(json.dumps(validate_metadata(json.loads(json.dumps(meta))), indent=2))
    checksums.write(root)
    return root


def _meta(root: Path) -> dict:
    return json.loads((root / "metadata.json").read_text())


def _edited(good: Path, tmp_path: Path, edit) -> Path:
    root = Path(shutil.copytree(good, tmp_path / NAME))
    meta = _meta(root)
    edit(meta)
    (root / "metadata.json").write_text(json.dumps(meta))
    checksums.write(root)
    return root


def test_metadata_lists_every_tensor_and_the_samples_as_one_npy_per_input(good: Path) -> None:
    meta = _meta(good)
    assert meta["model"]["task"] == "tensors" and "input" not in meta and meta["labels"] == []
    assert meta["sample_inputs"] == [
        {"name": "series", "file": "samples/inputs/0.npy", "shape": [4, 32], "dtype": "float32"},
        {"name": "vector", "file": "samples/inputs/1.npy", "shape": [6], "dtype": "float32"}]
    a = meta["artifacts"][0]
    assert a["inputs"] == [{"name": "series", "shape": [1, 4, 32], "dtype": "float32"},
                           {"name": "vector", "shape": [1, 6], "dtype": "float32"}]
    assert a["outputs"] == [
        {"name": "scores", "shape": [1, 5], "dtype": "float32", "sample_outputs": "samples/outputs/pte-fp32.npy"},
        {"name": "embedding", "shape": [1, 12], "dtype": "float32",
         "sample_outputs": "samples/outputs/pte-fp32.out1.npy"}]


def test_verify_runs_both_inputs_and_checks_both_outputs(good: Path) -> None:
    verdict = verify(good)
    (check,) = verdict.artifacts
    assert check.samples == 4 and [o.name for o in check.outputs] == ["scores", "embedding"]
    assert all(o.max_abs_diff <= o.allowed for o in check.outputs)
    for rel in ("samples/outputs/pte-fp32.npy", "samples/outputs/pte-fp32.out1.npy"):  # a check that can fail
        y = np.load(good / rel)
        assert np.ptp(y, axis=0).min() > 1e-3, f"{rel}: the outputs do not differ per input"
    assert "2 outputs; scores: max abs diff" in verdict.summary()[1]


def test_the_android_app_refuses_the_bundle_in_one_line_naming_its_inputs(good: Path, tmp_path: Path) -> None:
    assert android_refusal(good / "metadata.json", tmp_path).endswith(
        "UnsupportedModelException: cannot show two: it takes 2 inputs (series, vector); this app shows picture "
        "classifiers (one picture in, one list of class scores out)")


def test_an_output_that_no_longer_matches_is_named(good: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(good, tmp_path / NAME))
    rel = "samples/outputs/pte-fp32.out1.npy"
    y = np.load(root / rel)
    y[2, 3] += 0.01
    (root / rel).write_bytes(samples.npy_bytes(y))
    checksums.write(root)
    with pytest.raises(UserError, match=r"models/pte-fp32.pte: output 'embedding' differs from the recorded one by "
                                        r"1\.0\d*e-02"):
        verify(root)


def test_a_sample_input_of_another_dtype_is_refused_from_its_header(good: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(good, tmp_path / NAME))
    np.save(root / "samples/inputs/1.npy", VECTORS.astype(np.float64))
    checksums.write(root)
    packed = tmp_path / "bundle.tar.gz"
    packed.write_bytes(archive.tar_gz_bytes(root, NAME))
    proc = cli("verify", str(packed))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: verify: bundle.tar.gz: samples/inputs/1.npy: declares float64 [4, 6]; expected float32 with 4 rows "
        "x [6] (one row per sample)"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["artifacts"][0]["outputs"][1].update(name="emb\nedding"),
     r"artifacts\[0\]\.outputs\[1\]\.name: expected 1 to 128 letters"),
    (lambda m: m["artifacts"][0]["outputs"].extend(m["artifacts"][0]["outputs"] * 40),
     r"artifacts\[0\]\.outputs: expected 1 to 64 tensors, got 82"),
    (lambda m: m["artifacts"][0]["outputs"][0].update(shape=[1, 1 << 20, 8]),
     r"artifacts\[0\]\.outputs\[0\]\.shape: more than the 4,194,304 values per sample"),
    (lambda m: m["artifacts"][0]["inputs"].pop(),
     r"artifacts\[0\]\.inputs: 1 inputs but 2 sample_inputs"),
    (lambda m: m["sample_inputs"][0].update(shape=[4, 1 << 22]),
     r"sample_inputs\[0\]\.shape: more than the"),
    (lambda m: m["sample_inputs"][0].update(file="../../etc/passwd"),
     r"sample_inputs\[0\]\.file: expected a relative path inside the bundle"),
    (lambda m: m["artifacts"][0]["outputs"][0].update(sample_outputs="samples/outputs/other.npy"),
     r"artifacts\[0\]\.outputs\[0\]\.sample_outputs: expected the artifact's sample_outputs"),
    (lambda m: m.pop("sample_inputs"), r"metadata.json: sample_inputs: missing"),
])
def test_hostile_tensor_lists_are_refused_naming_the_key(good: Path, tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(UserError, match=message):
        verify(_edited(good, tmp_path, edit))


@pytest.mark.slow
def test_the_keyword_spotting_example_releases_and_verifies_both_inputs_and_outputs(tmp_path: Path) -> None:
    """docs/examples/keyword_spotting (the user's loader, two inputs, two outputs), shortened training, every
    artifact kind: released with its samples as .npy, verified output by output, refused by the app in one line."""
    from conftest import ROOT, write_target

    example = ROOT / "docs" / "examples" / "keyword_spotting"
    recipe = tmp_path / "kws.toml"
    text = (example / "kws-python.toml").read_text()
    text = text.replace('"kws_model.py:', f'"{example}/kws_model.py:').replace('"fsdd.py:', f'"{example}/fsdd.py:')
    text = text.replace("epochs = 30", "epochs = 3").replace("epochs = 10", "epochs = 1").replace("epochs = 3\n",
                                                                                                 "epochs = 1\n")
    recipe.write_text(text)
    target = write_target(tmp_path, runs=10, build='["tflite-fp32", "tflite-int8", "pte-fp32", "pte-int8"]')
    released = cli("release", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(tmp_path / "b"))
    assert released.returncode == 0, released.stderr[-3000:]
    bundle = Path(released.stdout.strip().splitlines()[-1])
    verified = cli("verify", str(bundle))
    assert verified.returncode == 0, verified.stderr[-3000:]
    root = bundle.parent / bundle.name.removesuffix(".tar.gz")
    meta = _meta(root)
    assert [t["name"] for t in meta["sample_inputs"]] == ["mfcc", "frames"] and meta["model"]["task"] == "tensors"
    for a in meta["artifacts"]:
        assert [t["name"] for t in a["inputs"]] == ["mfcc", "frames"]
        assert [t["name"] for t in a["outputs"]] == ["scores", "embedding"]
        assert f"{a['name']} ({a['runtime']}): 16 samples reproduce the recorded outputs (2 outputs; scores: " \
            in verified.stdout
        for t in a["outputs"]:  # what verify compared differs per input
            assert np.ptp(np.load(root / t["sample_outputs"]), axis=0).max() > 1e-3, t["name"]
    assert android_refusal(root / "metadata.json", tmp_path).endswith("it takes 2 inputs (mfcc, frames); this app "
                                                                       "shows picture classifiers (one picture in, "
                                                                       "one list of class scores out)")
