"""The user's task metric and per-output fidelity (issue 24, item 3): built-in metrics, the user's own function and
its failures in one line, and gates on SQNR, cosine and agreement with the fp32 model that can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.artifacts.artifact import Artifact
from pipeline.core.errors import ConfigError, UserError
from pipeline.engine.recipes import load_recipe
from pipeline.metrics import task
from pipeline.metrics.fidelity import differs_per_input, output_fidelity
from pipeline.stages.evaluate import compare, violations

RNG = np.random.default_rng(0)
SCORES = RNG.standard_normal((50, 6)).astype(np.float32)
LABELS = SCORES.argmax(1)


def user_metric(tmp_path: Path, body: str, higher: bool = True) -> dict:
    (tmp_path / "m.py").write_text(f"import numpy as np\ndef score(outputs, targets):\n    {body}\n")
    return task.check({"metric": "m.py:score", "higher_is_better": higher}, tmp_path / "r.toml")


def test_built_in_metrics_score_the_first_output():
    labels = LABELS.copy()
    labels[:10] = (labels[:10] + 1) % 6
    assert task.score({"name": "top1"}, [SCORES], ["s"], labels) == pytest.approx(0.8)
    assert task.score({"name": "top5"}, [SCORES], ["s"], labels) >= 0.8
    targets = RNG.standard_normal((50, 6)).astype(np.float32)
    error = SCORES.astype(np.float64) - targets
    assert task.score({"name": "mse"}, [SCORES], ["s"], targets) == pytest.approx(float((error**2).mean()))
    assert task.score({"name": "mae"}, [SCORES], ["s"], targets) == pytest.approx(float(np.abs(error).mean()))
    assert task.resolved({"name": "auto", "higher_is_better": True}, targets)["name"] == "mse"
    assert task.drop({"name": "mse", "higher_is_better": False}, 1.0, 1.5) == 0.5  # more error: worse, positive
    assert task.drop({"name": "top1", "higher_is_better": True}, 0.9, 0.85) == pytest.approx(5.0)  # points


def test_the_users_metric_gets_every_output_by_name(tmp_path):
    body = "return float((outputs['scores'].argmax(1) == targets).mean() * outputs['emb'].shape[1] / 2)"
    spec = user_metric(tmp_path, body)
    assert task.score(spec, [SCORES, SCORES[:, :2]], ["scores", "emb"], LABELS) == 1.0
    assert task.label(spec) == "score"


@pytest.mark.parametrize("body, said", [
    ("raise RuntimeError('no such class')", "raised RuntimeError: no such class"),
    ("return 'high'", "returned 'high' (str); it must return one finite float"),
    ("return float('nan')", "returned nan; it must return one finite float"),
    ("return np.ones(3)", "it must return one finite float"),
])
def test_a_metric_that_fails_or_returns_something_else_is_one_line(tmp_path, body, said):
    spec = user_metric(tmp_path, body)
    with pytest.raises(UserError, match="evaluate.metric 'm.py:score'") as exc:
        task.score(spec, [SCORES], ["s"], LABELS)
    assert said in str(exc.value) and "\n" not in str(exc.value)


def test_a_recipe_naming_a_missing_metric_file_is_refused_by_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "r"\n[model]\narch = "mobilenet_v2_small"\n[evaluate]\n'
                      'metric = "nowhere.py:score"\n')
    with pytest.raises(ConfigError, match="evaluate.metric"):
        load_recipe(str(recipe))


def test_fidelity_tells_a_faithful_output_from_a_damaged_one():
    close = output_fidelity(SCORES + 1e-4, SCORES)
    far = output_fidelity(SCORES + RNG.standard_normal(SCORES.shape).astype(np.float32), SCORES)
    assert close["sqnr_db"] > 70 > 10 > far["sqnr_db"] and close["cosine"] > 0.9999 > far["cosine"]
    assert close["top1_agreement"] == 1.0 > far["top1_agreement"]
    assert differs_per_input([SCORES]) and not differs_per_input([np.ones((5, 3))])


def artifact(name: str, precision: str = "int8") -> Artifact:
    return Artifact(name, "/x", "tflite", precision, "NHWC", (1, 2, 2, 1), reference="torch-fp32")


def test_a_damaged_second_output_and_a_low_agreement_with_fp32_fail_the_gates():
    recipe = load_recipe("fashion-mnist-mobilenetv2").data
    embedding = RNG.standard_normal((50, 8)).astype(np.float32)
    damaged = embedding + 3 * RNG.standard_normal(embedding.shape).astype(np.float32)
    m = compare([SCORES, damaged], [SCORES, embedding], LABELS, ["scores", "embedding"],
                {"name": "top1", "higher_is_better": True})
    flipped = SCORES[:, ::-1].copy()
    m["against_fp32"] = {"source": "torch-fp32", **compare([flipped], [SCORES], None)}
    found = violations(artifact("tflite-int8"), m, recipe)
    assert any("output 'embedding' SQNR" in v and "tolerances.int8.min_sqnr_db" in v for v in found), found
    assert any("top1_agreement with its fp32 model torch-fp32" in v for v in found), found
    assert not any("'scores'" in v for v in found)
    clean = compare([SCORES, embedding], [SCORES, embedding], LABELS, ["scores", "embedding"])
    assert violations(artifact("tflite-fp32", "fp32"), clean, recipe) == []


def test_an_output_onnx2tf_moved_channels_last_is_moved_back_whatever_its_rank():
    from pipeline.artifacts.tensors import TensorSpec
    from pipeline.runtimes import from_tensor_output

    series = RNG.standard_normal((2, 16, 40)).astype(np.float32)  # the model's (N, C, T)
    back = from_tensor_output(np.ascontiguousarray(series.transpose(0, 2, 1)), TensorSpec("map", (1, 40, 16),
                                                                                          layout="NWC"))
    np.testing.assert_array_equal(back, series)
    image = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    back = from_tensor_output(np.ascontiguousarray(image.transpose(0, 2, 3, 1)), TensorSpec("m", (1, 5, 6, 3),
                                                                                            layout="NHWC"))
    np.testing.assert_array_equal(back, image)
