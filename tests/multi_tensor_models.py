"""Small models of several inputs and outputs, seeded, and their outputs from the host's own runtimes.

The main one: a 1-D conv branch over a (C, T) series and a Linear over a small feature vector, joined into an
embedding and class scores; it returns (scores, embedding). A token model takes int64 ids and a bool mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def keras_two_input_tflite(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The same shape of model built in Keras (seconds, where onnx2tf takes half a minute): series (T, C) and vector
    in, scores and embedding out, written to `path`; returns the inputs in the file's input order and the host
    LiteRT's outputs."""
    import tensorflow as tf

    tf.random.set_seed(0)
    series = tf.keras.Input((STEPS, CHANNELS), batch_size=1, name="series")
    vector = tf.keras.Input((FEATURES,), batch_size=1, name="vector")
    a = tf.keras.layers.GlobalAveragePooling1D()(tf.keras.layers.Conv1D(8, 5, activation="relu")(series))
    b = tf.keras.layers.Dense(8, activation="relu")(vector)
    embedding = tf.keras.layers.Dense(EMBEDDING)(tf.keras.layers.Concatenate()([a, b]))
    scores = tf.keras.layers.Dense(CLASSES)(tf.keras.layers.ReLU()(embedding))
    model = tf.keras.Model([series, vector], [scores, embedding])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    inputs = in_file_order(path, {"series": np.ascontiguousarray(SERIES.transpose(0, 2, 1)), "vector": VECTORS})
    return inputs, litert_outputs(path, *inputs)


def in_file_order(path: Path, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The arrays in the .tflite file's input order, matched by name (converters order inputs their own way)."""
    from ai_edge_litert.interpreter import Interpreter

    names = [d["name"] for d in Interpreter(model_path=str(path)).get_input_details()]
    return [next(a for key, a in arrays.items() if key in name) for name in names]


def assert_outputs_differ_per_sample(outputs: list[np.ndarray]) -> None:
    """Parity means nothing on outputs that ignore the input: every output must change from sample to sample."""
    for out in outputs:
        assert all(np.abs(out[i] - out[0]).max() > 1e-3 for i in range(1, len(out))), out
