"""run_model with models of several inputs and outputs, on the test devices, checked against the host's runtimes.

The model: a 1-D conv branch over a (C, T) series and a Linear over a small feature vector, joined into an
embedding and class scores; it returns (scores, embedding). Seeded weights, real converters, real runtimes.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ToolError
from pipeline.devices.run_model import run_model
from pipeline.devices.testbed import bring_up as testbed

pytestmark = pytest.mark.devices
N = 4  # samples
CHANNELS, STEPS, FEATURES, EMBEDDING, CLASSES = 4, 32, 6, 12, 5
RNG = np.random.default_rng(1)
SERIES = RNG.standard_normal((N, CHANNELS, STEPS)).astype(np.float32)  # PyTorch's (N, C, T)
VECTORS = RNG.standard_normal((N, FEATURES)).astype(np.float32)
VOCAB, TOKENS = 50, 7
TOKEN_IDS = RNG.integers(0, VOCAB, (N, TOKENS)).astype(np.int64)
MASK = np.array([[True] * k + [False] * (TOKENS - k) for k in (7, 3, 5, 1)])


def two_input_model():
    import torch

    class SeriesAndVector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(CHANNELS, 8, 5)
            self.dense = torch.nn.Linear(FEATURES, 8)
            self.embed = torch.nn.Linear(16, EMBEDDING)
            self.head = torch.nn.Linear(EMBEDDING, CLASSES)

        def forward(self, series, vector):
            a = torch.relu(self.conv(series)).mean(dim=2)
            b = torch.relu(self.dense(vector))
            embedding = self.embed(torch.cat([a, b], dim=1))
            return self.head(torch.relu(embedding)), embedding

    torch.manual_seed(0)
    return SeriesAndVector().eval()


def token_model():
    """int64 token ids and a bool mask in; float32 pooled features and int64 argmax ids out."""
    import torch

    class MaskedTokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, 8)
            self.head = torch.nn.Linear(8, CLASSES)

        def forward(self, ids, mask):
            weights = mask.to(torch.float32).unsqueeze(-1)
            pooled = (self.embedding(ids) * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            scores = self.head(pooled)
            return scores, scores.argmax(dim=1)

    torch.manual_seed(0)
    return MaskedTokens().eval()


def per_sample(model, *arrays) -> list[np.ndarray]:
    """PyTorch's outputs, one sample at a time, concatenated per output."""
    import torch

    with torch.no_grad():
        outs = [model(*[torch.from_numpy(a[i : i + 1]) for a in arrays]) for i in range(N)]
    return [np.concatenate([o[j].numpy() for o in outs]) for j in range(len(outs[0]))]


def lower_to_pte(model, examples, path) -> None:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(model, tuple(torch.from_numpy(e[:1]) for e in examples))
    path.write_bytes(to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def executorch_outputs(path, *arrays) -> list[np.ndarray]:
    """The host's ExecuTorch runtime, one sample at a time."""
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    outs = [method.execute([torch.from_numpy(a[i : i + 1]) for a in arrays]) for i in range(N)]
    return [np.concatenate([o[j].numpy() for o in outs]) for j in range(len(outs[0]))]


def litert_outputs(path, *arrays) -> list[np.ndarray]:
    """The host's LiteRT, one sample at a time, outputs in the file's order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    outs = []
    for i in range(N):
        for detail, a in zip(interpreter.get_input_details(), arrays, strict=True):
            interpreter.set_tensor(detail["index"], a[i : i + 1])
        interpreter.invoke()
        outs.append([interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()])
    return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]


@pytest.fixture(scope="module")
def emulated():
    return testbed.up("emulated-arm64")


@pytest.fixture(scope="module")
def loopback():
    return testbed.up("adb-loopback")


@pytest.fixture(scope="module")
def two_input_pte(tmp_path_factory):
    """The two-input model as an XNNPACK .pte, its host ExecuTorch outputs and PyTorch's."""
    model = two_input_model()
    path = tmp_path_factory.mktemp("pte") / "two_inputs.pte"
    lower_to_pte(model, (SERIES, VECTORS), path)
    return path, executorch_outputs(path, SERIES, VECTORS), per_sample(model, SERIES, VECTORS)


@pytest.fixture(scope="module")
def two_input_tflite(tmp_path_factory):
    """The two-input model through ONNX and the project's onnx2tf adapter; inputs in the file's layout, host LiteRT
    outputs (file order) and PyTorch's outputs in that order."""
    import torch

    from pipeline.converters import onnx2tf_adapter

    model = two_input_model()
    work = tmp_path_factory.mktemp("tflite")
    examples = (torch.from_numpy(SERIES[:1]), torch.from_numpy(VECTORS[:1]))
    program = torch.onnx.export(model, examples, dynamo=True, opset_version=18, verbose=False,
                                input_names=["series", "vector"], output_names=["scores", "embedding"])
    program.save(str(work / "model.onnx"), external_data=False)
    path = onnx2tf_adapter.convert(work / "model.onnx", work / "onnx2tf", None, int8=False)["fp32"]
    from ai_edge_litert.interpreter import Interpreter

    # onnx2tf makes the (C, T) series channels-last and orders the file's inputs and outputs its own way
    arrays = {"series": np.ascontiguousarray(SERIES.transpose(0, 2, 1)), "vector": VECTORS}
    names = [d["name"] for d in Interpreter(model_path=str(path)).get_input_details()]
    inputs = [next(a for key, a in arrays.items() if key in name) for name in names]
    host = litert_outputs(path, *inputs)
    torch_out = per_sample(model, SERIES, VECTORS)
    by_width = {o.shape[1]: o for o in torch_out}
    return path, inputs, host, [by_width[o.shape[1]] for o in host]


@pytest.fixture(scope="module")
def keras_tflite(tmp_path_factory):
    """The same shape of model built in Keras (seconds, where onnx2tf takes half a minute): series (T, C) and vector
    in, scores and embedding out; the file's input order read from the file, its host LiteRT outputs."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    tf.random.set_seed(0)
    series = tf.keras.Input((STEPS, CHANNELS), batch_size=1, name="series")
    vector = tf.keras.Input((FEATURES,), batch_size=1, name="vector")
    a = tf.keras.layers.GlobalAveragePooling1D()(tf.keras.layers.Conv1D(8, 5, activation="relu")(series))
    b = tf.keras.layers.Dense(8, activation="relu")(vector)
    embedding = tf.keras.layers.Dense(EMBEDDING)(tf.keras.layers.Concatenate()([a, b]))
    scores = tf.keras.layers.Dense(CLASSES)(tf.keras.layers.ReLU()(embedding))
    model = tf.keras.Model([series, vector], [scores, embedding])
    path = tmp_path_factory.mktemp("keras") / "two_inputs.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    arrays = {"series": np.ascontiguousarray(SERIES.transpose(0, 2, 1)), "vector": VECTORS}
    names = [d["name"] for d in Interpreter(model_path=str(path)).get_input_details()]
    inputs = [next(a for key, a in arrays.items() if key in name) for name in names]
    return path, inputs, litert_outputs(path, *inputs)


@pytest.fixture(scope="module")
def token_pte(tmp_path_factory):
    model = token_model()
    path = tmp_path_factory.mktemp("tokens") / "tokens.pte"
    lower_to_pte(model, (TOKEN_IDS, MASK), path)
    return path, executorch_outputs(path, TOKEN_IDS, MASK), per_sample(model, TOKEN_IDS, MASK)


def max_diffs(actual: list[np.ndarray], expected: list[np.ndarray]) -> list[float]:
    assert [(a.shape, a.dtype) for a in actual] == [(e.shape, e.dtype) for e in expected]
    pairs = zip(actual, expected, strict=True)
    return [float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max()) for a, e in pairs]


def assert_outputs_differ_per_sample(outputs: list[np.ndarray]) -> None:
    """Parity means nothing on outputs that ignore the input: every output must change from sample to sample."""
    for out in outputs:
        assert all(np.abs(out[i] - out[0]).max() > 1e-3 for i in range(1, len(out))), out


def test_emulated_arm64_runs_two_input_two_output_pte_like_host_executorch(emulated, two_input_pte):
    path, host, torch_out = two_input_pte
    result = run_model(emulated, path, "pte", [SERIES, VECTORS], threads=1, warmup=1, runs=2, timeout=300)
    assert [o.shape for o in result.outputs] == [(N, CLASSES), (N, EMBEDDING)]
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()
    for diff, ref in zip(max_diffs(result.outputs, torch_out), torch_out, strict=True):
        assert diff <= 1e-4 * np.abs(ref).max()
    assert result.device_info["arch"] == "aarch64" and len(result.latencies_ms) == 2


def test_emulated_arm64_runs_two_input_two_output_keras_tflite_like_host_litert(emulated, keras_tflite):
    path, inputs, host = keras_tflite
    result = run_model(emulated, path, "tflite", inputs, threads=1, warmup=1, runs=2, timeout=300)
    assert sorted(o.shape for o in result.outputs) == [(N, CLASSES), (N, EMBEDDING)]
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()


@pytest.mark.slow  # about 60 s: the onnx2tf conversion alone takes half of it
def test_emulated_arm64_runs_two_input_two_output_tflite_like_host_litert(emulated, two_input_tflite):
    path, inputs, host, torch_out = two_input_tflite
    result = run_model(emulated, path, "tflite", inputs, threads=1, warmup=1, runs=2, timeout=300)
    assert len(result.outputs) == 2
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()
    for diff, ref in zip(max_diffs(result.outputs, torch_out), torch_out, strict=True):
        assert diff <= 1e-4 * np.abs(ref).max()
    assert result.device_info["runtime"] == "litert"


def test_emulated_arm64_runs_int64_token_ids_and_bool_mask(emulated, token_pte):
    path, host, torch_out = token_pte
    result = run_model(emulated, path, "pte", [TOKEN_IDS, MASK], threads=1, warmup=0, runs=1, timeout=300)
    scores, ids = result.outputs
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert_outputs_differ_per_sample([scores])
    assert np.abs(scores - host[0]).max() <= 1e-5 * np.abs(host[0]).max()
    assert np.abs(scores - torch_out[0]).max() <= 1e-4 * np.abs(torch_out[0]).max()
    assert (ids == host[1]).all() and (ids == scores.argmax(1)).all()


def test_loopback_runs_two_input_two_output_pte_with_the_amd64_runner(loopback, two_input_pte):
    path, host, _ = two_input_pte
    result = run_model(loopback, path, "pte", (SERIES, VECTORS), threads=1, warmup=0, runs=1, timeout=120)
    assert_outputs_differ_per_sample(result.outputs)
    for diff, ref in zip(max_diffs(result.outputs, host), host, strict=True):
        assert diff <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([SERIES], r"1 input arrays given, the model takes 2"),
        ([SERIES, VECTORS, VECTORS], r"3 input arrays given, the model takes 2"),
        ([SERIES, VECTORS[:, :5]], r"input 1 .*per-sample shape \(5,\) differs from the model's \(6,\)"),
        ([SERIES[:, :, :30], VECTORS], r"input 0 .*per-sample shape \(4, 30\) differs from the model's \(4, 32\)"),
        ([SERIES, VECTORS.astype(np.int64)], r"input 1 .*dtype int64 differs from the model's float32"),
    ],
)
def test_inputs_that_do_not_fit_the_pte_are_one_line_naming_the_input(loopback, two_input_pte, inputs, expected):
    with pytest.raises(ToolError, match=r"^device adb-loopback: run pte runner: exit code 1: et_runner: " + expected):
        run_model(loopback, two_input_pte[0], "pte", inputs, threads=1, warmup=0, runs=1, timeout=120)


def test_inputs_that_do_not_fit_the_tflite_are_one_line_naming_the_input(emulated, keras_tflite):
    path, inputs, _ = keras_tflite
    v = next(i for i, x in enumerate(inputs) if x.ndim == 2)  # the vector's place in the file's input order
    bad = [x[:, :5] if i == v else x for i, x in enumerate(inputs)]
    with pytest.raises(ToolError) as err:
        run_model(emulated, path, "tflite", bad, threads=1, warmup=0, runs=1, timeout=300)
    message = str(err.value)
    assert message.startswith("device emulated-arm64: run tflite runner: exit code 1: litert_runner: ValueError: ")
    assert f"input {v} (" in message and "per-sample shape (5,) differs from the model's (6,)" in message
    assert "\n" not in message


def test_arrays_of_other_dtypes_or_lengths_are_refused_before_the_device_is_touched(loopback, two_input_pte):
    with pytest.raises(ToolError, match=r"input 1: a float64 array of shape \(4, 6\); expected"):
        run_model(loopback, two_input_pte[0], "pte", [SERIES, VECTORS.astype(np.float64)], threads=1, warmup=0,
                  runs=1)
    with pytest.raises(ToolError, match=r"input 1 has 3 samples, input 0 has 4"):
        run_model(loopback, two_input_pte[0], "pte", [SERIES, VECTORS[:3]], threads=1, warmup=0, runs=1)
