"""phone-pipeline debug: layer-by-layer comparison of artifacts with their PyTorch model, on the shared e2e run.

Each test works on a copy of the run's manifest in its own folder (the artifacts stay in the run's cache), so the
pages it writes and the files it alters never touch the shared run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pipeline.debug import debug
from pipeline.layers.onnx_layers import node_module
from tests.conftest import cli, write_target


def _run_copy(e2e: dict, folder: Path, replace: dict[str, Path] | None = None) -> Path:
    """A run folder holding e2e's manifest, with the named artifacts' paths pointed at other files."""
    manifest = json.loads(json.dumps(e2e["manifest"]))
    for rec in manifest["stages"]:
        for art in rec["artifacts"]:
            if replace and art["name"] in replace:
                art["path"] = str(replace[art["name"]])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _recipe(e2e: dict) -> str:
    """The recipe the shared run was made with: debug rebuilds the model from it, never from the manifest's word."""
    return e2e["manifest"]["recipe"]["path"]


def _path(e2e: dict, name: str) -> Path:
    return Path(next(a["path"] for r in e2e["manifest"]["stages"] for a in r["artifacts"] if a["name"] == name))


@pytest.mark.parametrize("name", ["onnx-fp32", "tflite-fp32", "tflite-pruned-int8-ptq", "pte-pruned-int8-qat"])
def test_faithful_artifacts_match_their_layers_and_none_diverges(e2e, tmp_path, name):
    page = debug(_run_copy(e2e, tmp_path), name, recipe=_recipe(e2e))
    result = json.loads(page.with_suffix(".json").read_text())
    layers = result["layers"]
    assert len(layers) >= 15, result["unmatched"]  # every conv of the tiny MobileNetV2 at least
    assert result["first_divergent_layer"] is None, (result["first_divergent_layer"], result["worst_sqnr_db"])
    assert page.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| layer |" in page.read_text()
    if result["artifact"]["precision"] == "fp32":
        assert min(r["sqnr_db"] for r in layers if r["sqnr_db"] != "inf") > 80  # float rounding only
    else:  # int8 costs SQNR but a faithful int8 layer stays well above noise
        assert 15 < result["worst_sqnr_db"] < 60
    assert result["output"]["top1_agreement"] >= 0.75


def test_a_weight_altered_in_the_onnx_file_is_named(e2e, tmp_path):
    model = onnx.load(str(_path(e2e, "onnx-fp32")))
    init = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in init]
    victim = convs[len(convs) // 2]
    w = numpy_helper.to_array(init[victim.input[1]]).copy()
    w[0] *= -3.0  # one output channel's filter turned around
    init[victim.input[1]].CopyFrom(numpy_helper.from_array(w, victim.input[1]))
    altered = tmp_path / "altered.onnx"
    onnx.save(model, str(altered))
    page = debug(_run_copy(e2e, tmp_path / "run", {"onnx-fp32": altered}), "onnx-fp32", recipe=_recipe(e2e))
    result = json.loads(page.with_suffix(".json").read_text())
    expected = node_module(victim)
    assert result["first_divergent_layer"] == expected, result["layers"][:3]
    before = [r for r in result["layers"][: [r["layer"] for r in result["layers"]].index(expected)]]
    assert before and all(r["sqnr_db"] == "inf" or r["sqnr_db"] > 80 for r in before)


def test_a_weight_altered_in_the_tflite_file_is_named(e2e, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    src = _path(e2e, "tflite-fp32")
    clean_page = debug(_run_copy(e2e, tmp_path / "clean"), "tflite-fp32", recipe=_recipe(e2e))
    clean = json.loads(clean_page.with_suffix(".json").read_text())
    weighted = [r for r in clean["layers"] if r["matched_by"].startswith("weights")]  # not a pool or an add
    layer = weighted[len(weighted) // 2]
    tensor = layer["matched_by"].split("TFLite ")[1].split(" = ONNX")[0]  # the op output the clean page matched
    interp = Interpreter(model_path=str(src))
    details = {d["index"]: d for d in interp.get_tensor_details()}
    op = next(o for o in interp._get_ops_details() if details[o["outputs"][0]]["name"].split(";")[0] == tensor)
    w = interp.get_tensor(op["inputs"][1])
    blob = src.read_bytes()
    assert blob.count(w.tobytes()) == 1
    altered = tmp_path / "altered.tflite"
    altered.write_bytes(blob.replace(w.tobytes(), (-w).tobytes()))
    page = debug(_run_copy(e2e, tmp_path / "run", {"tflite-fp32": altered}), "tflite-fp32", recipe=_recipe(e2e))
    result = json.loads(page.with_suffix(".json").read_text())
    assert result["first_divergent_layer"] == layer["layer"]
    row = next(r for r in result["layers"] if r["layer"] == layer["layer"])
    assert "weights differ" in row["matched_by"] and row["weight_relative_difference"] > 1.5
    assert "weights differ" in page.read_text()


def test_debug_refuses_what_it_cannot_compare_with_one_line(e2e, tmp_path):
    run = _run_copy(e2e, tmp_path / "run")
    for args, needle in (((str(run), "tflite-nope"), "no artifact 'tflite-nope'"),
                         ((str(tmp_path / "empty"), "onnx-fp32"), "no manifest.json"),
                         ((str(run), "torch-fp32"), "is the reference itself")):
        proc = cli("debug", *args, "--recipe", _recipe(e2e))
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "empty").exists()


def test_sqnr_of_known_errors():
    from pipeline.layers.metrics import compare

    ref = np.ones(1000, np.float32)
    m = compare(ref + 0.01, ref)  # error power 1e-4 of signal 1: 40 dB
    assert m["sqnr_db"] == pytest.approx(40.0, abs=1e-3) and m["relative_error"] == pytest.approx(0.01, rel=1e-4)
    assert compare(ref, ref)["sqnr_db"] == float("inf")
    assert compare(-ref, ref)["cosine"] == pytest.approx(-1.0)


@pytest.mark.slow
def test_debug_finds_where_the_qdq_onnx_breaks_in_onnx2tf(e2e, tmp_path):
    from pipeline.evidence.qdq_through_onnx2tf import measure

    result = measure(_run_copy(e2e, tmp_path / "run"))
    forms = {f["form"].split(" (")[0]: f for f in result["forms"]}
    assert forms["Q/DQ ONNX through onnx2tf, run in LiteRT"]["agreement_with_pt2e"] < 0.5  # the trap is there
    page = json.loads(Path(result["debug"]["page"]).with_suffix(".json").read_text())
    assert page["layers"] and result["debug"]["first_divergent_layer"] == page["layers"][0]["layer"] == "features.0.2"
    assert page["layers"][0]["weight_relative_difference"] > 0.1  # the cause: onnx2tf's weights are not the file's


def test_a_damaged_artifact_is_one_line_not_a_traceback(e2e, tmp_path):
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(_path(e2e, "onnx-fp32").read_bytes()[:5000])
    run = _run_copy(e2e, tmp_path / "run", {"onnx-fp32": damaged})
    proc = cli("debug", str(run), "onnx-fp32", "--recipe", _recipe(e2e))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and str(damaged) in proc.stderr
    assert not (run / "debug").exists()


def _every_op_model(path: Path) -> Path:
    """An image model with an op of each kind debug must compare, from onnx.helper with seeded weights: convolutions,
    a padded AveragePool counting its padding (onnx2tf writes it as a pool, slices, multipliers and concats), Concat,
    MaxPool, the average pool that ends inception_v1 (a window larger than its 4x4 input, padded at the end only, the
    padding not counted), Flatten, Gemm, MatMul and Softmax."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weights = []

    def w(name: str, *shape: int, gain: float = 1.0) -> str:
        scale = gain / np.sqrt(np.prod(shape[1:])) if len(shape) > 1 else 0.1
        weights.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    node = helper.make_node
    nodes = [
        node("Conv", ["input", w("c1w", 8, 3, 3, 3), w("c1b", 8)], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
        node("Relu", ["c1"], ["r1"], name="relu1"),
        node("Conv", ["r1", w("c2w", 8, 8, 1, 1), w("c2b", 8)], ["c2"], name="conv2"),
        node("AveragePool", ["r1"], ["p1"], name="avgpool", kernel_shape=[3, 3], pads=[1] * 4, count_include_pad=1),
        node("Concat", ["c2", "p1"], ["cat"], name="concat", axis=1),
        node("Conv", ["cat", w("c3w", 16, 16, 3, 3), w("c3b", 16)], ["c3"], name="conv3", pads=[1] * 4,
             strides=[2, 2]),
        node("Relu", ["c3"], ["r3"], name="relu3"),
        node("MaxPool", ["r3"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]),
        node("AveragePool", ["mp"], ["p2"], name="avgpool_end", kernel_shape=[5, 5], pads=[0, 0, 1, 1]),
        node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        node("Gemm", ["flat", w("fcw", 32, 16), w("fcb", 32)], ["fc"], name="fc", transB=1),
        node("Relu", ["fc"], ["fr"], name="relu_fc"),
        node("MatMul", ["fr", w("mmw", 32, 10, gain=4.0)], ["logits"], name="matmul"),
        node("Softmax", ["logits"], ["output"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(nodes, "every-op", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def every_op_run(tmp_path_factory) -> dict:
    """The model above imported as a user's ONNX file and converted by the pipeline; the fp32 gate fails."""
    folder = tmp_path_factory.mktemp("every-op")
    model = _every_op_model(folder / "every_op.onnx")
    recipe = folder / "every-op.toml"
    recipe.write_text(f'[recipe]\nname = "every-op"\n[model]\nsource = "onnx"\npath = "{model}"\n'
                      '[data]\ndataset = "photos"\ncalibration_samples = 8\n')
    target = write_target(folder, runs=5, build='["onnx-fp32", "tflite-fp32"]')
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(folder / "build"))
    run_dir = folder / "build" / "runs" / "every-op__test-host"
    return {"proc": proc, "recipe": recipe, "model": model, "run_dir": run_dir}


@pytest.mark.slow  # a run with an onnx2tf conversion: 62-75 s here on 2 shared cores
def test_the_test_model_answers_each_photo_differently(every_op_run):
    import onnxruntime as ort

    from pipeline import data
    from pipeline.engine.recipes import load_recipe

    recipe = load_recipe(str(every_op_run["recipe"]))
    x = data.to_tensor(data.eval_split(recipe, 8).images, data.input_spec(recipe))
    session = ort.InferenceSession(str(every_op_run["model"]))
    out = np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    assert np.abs(out - out.mean(0)).max() > 0.1 and out.max(1).max() - out.max(1).min() > 0.2, out


@pytest.mark.slow  # a run with an onnx2tf conversion: 62-75 s here on 2 shared cores
def test_the_gate_failure_names_the_average_pool_onnx2tf_gets_wrong(every_op_run):
    """onnx2tf 1.29 divides the last pool by the whole window (49 in inception_v1, 25 here) where ONNX divides by
    the real values under it: every convolution is faithful, so only a comparison of every op finds it."""
    proc = every_op_run["proc"]
    assert proc.returncode == 3 and "tflite-fp32: max_abs_diff" in proc.stderr, proc.stderr[-3000:]
    result = json.loads((every_op_run["run_dir"] / "debug" / "tflite-fp32.json").read_text())  # written by the gate
    assert result["reference"]["name"] == "onnx-fp32" and result["first_divergent_layer"] == "avgpool_end"
    rows = {r["layer"]: r for r in result["layers"]}
    assert {"AveragePool", "Concat", "MaxPool", "MatMul", "Softmax"} <= {r["kind"] for r in rows.values()}
    names = [r["layer"] for r in result["layers"]]
    before = names[: names.index("avgpool_end")]
    assert {"relu1", "conv2", "avgpool", "concat", "maxpool"} <= set(before)
    assert all(rows[n]["sqnr_db"] == "inf" or rows[n]["sqnr_db"] > 100 for n in before)  # float rounding only
    culprit = rows["avgpool_end"]
    assert culprit["sqnr_db"] < 20 and culprit["sqnr_drop_db"] > 80 and culprit["max_abs_error"] > 0.1
    assert "graph position and shape" in culprit["matched_by"] and "(AVERAGE_POOL_2D)" in culprit["matched_by"]
    assert "weights" in rows["relu1"]["matched_by"]  # the conv, its ReLU fused: matched by weights as before


@pytest.mark.slow  # a run with an onnx2tf conversion: 62-75 s here on 2 shared cores
def test_debug_against_source_prints_the_first_divergent_op(every_op_run):
    proc = cli("debug", str(every_op_run["run_dir"]), "tflite-fp32", "--against", "source",
               "--recipe", str(every_op_run["recipe"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "first below 60 dB: avgpool_end" in proc.stdout, proc.stdout
    table = Path(proc.stdout.strip().splitlines()[-1]).read_text()
    assert "`avgpool_end` **<-** | AveragePool" in table and "| Softmax |" in table
