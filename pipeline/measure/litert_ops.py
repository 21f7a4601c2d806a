"""The operators of a .tflite file, as LiteRT reads them: op name, count and tensor types (int8 or float work).

LiteRT's Python API (ai-edge-litert 2.3.0) times the whole invoke only: it has no per-operator timing, so this is
the op table without times. It still shows what int8 does not cover: float ops between int8 ones, QUANTIZE and
DEQUANTIZE at the boundaries, layout ops (TRANSPOSE, PAD) that a converter inserted.
"""

from __future__ import annotations

from pathlib import Path

TIMING_NOTE = ("LiteRT's Python API gives no per-operator timing (only the whole invoke): this table lists the "
               "operators and their tensor types, without times")


def _dtype(details: dict, index: int) -> str:
    return details[index]["dtype"].__name__ if index in details else "-"


def op_table(path: Path) -> dict:
    """One row per (op, input types, output types) with its count, in first-seen order, and the op count per name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    rows: dict[tuple, dict] = {}
    for op in interpreter._get_ops_details():  # private, but the only op listing the Python API has
        # weights and biases are inputs too: the first input is the activation an op reads
        inputs = [_dtype(tensors, i) for i in op["inputs"] if i >= 0]
        outputs = [_dtype(tensors, i) for i in op["outputs"] if i >= 0]
        key = (op["op_name"], inputs[0] if inputs else "-", tuple(outputs))
        row = rows.setdefault(key, {"op": op["op_name"], "input_dtype": key[1], "output_dtypes": list(key[2]),
                                    "all_input_dtypes": sorted(set(inputs)), "count": 0})
        row["count"] += 1
    ops = list(rows.values())
    integer = sum(r["count"] for r in ops if r["input_dtype"] in ("int8", "uint8", "int16")
                  and all(d in ("int8", "uint8", "int16", "int32") for d in r["output_dtypes"]))
    return {"runtime": "litert", "ops": ops, "op_count": sum(r["count"] for r in ops), "integer_ops": integer,
            "timing": TIMING_NOTE}
