"""A float16-weight TFLite file (weights stored as float16, each behind a DEQUANTIZE op that widens it at load, as
TensorFlow's float16 quantization and mediapipe's models do) rewritten with those weights stored as float32: the
model's own fp32, against which the fp16 file's fidelity is measured.

Widening float16 to float32 is exact, so the fp32 file holds the very values the fp16 file computes with; what the
comparison measures is whether the runtime computes the fp16 file as it does the fp32 one. Read and written with
TensorFlow's own flatbuffer tools (tensorflow.lite.tools.flatbuffer_utils), the graph otherwise unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def widen_fp16_weights(src: Path, dest: Path) -> int:
    """Write `src` with every float16 constant behind a DEQUANTIZE stored as float32 and that DEQUANTIZE removed;
    returns how many weights were widened (0: the file had none, and `dest` is a copy)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    widened = 0
    for graph in model.subgraphs:
        kept, renamed = [], {}
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE:
                weight = graph.tensors[op.inputs[0]]
                buffer = model.buffers[weight.buffer]
                if weight.type == schema.TensorType.FLOAT16 and buffer.data is not None and len(buffer.data):
                    buffer.data = np.frombuffer(bytes(bytearray(buffer.data)), "<f2").astype("<f4").view(np.uint8)
                    weight.type = schema.TensorType.FLOAT32
                    renamed[op.outputs[0]] = op.inputs[0]  # the op's readers read the widened weight itself
                    widened += 1
                    continue
            kept.append(op)
        for op in kept:
            op.inputs = [renamed.get(int(i), int(i)) for i in op.inputs]
        graph.outputs = [renamed.get(int(i), int(i)) for i in graph.outputs]
        graph.operators = kept
    flatbuffer_utils.write_model(model, str(dest))
    return widened
