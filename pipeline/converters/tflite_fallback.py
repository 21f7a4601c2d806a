"""int8 TFLite with chosen layers left in float: TensorFlow's quantization debugger, on onnx2tf's SavedModel.

onnx2tf's full-integer quantization has no per-layer exclusion. TensorFlow's converter does, through the
quantization debugger's `denylisted_nodes` (op output tensor names kept in float, with QUANTIZE/DEQUANTIZE around
them); `get_nondebug_quantized_model()` returns the plain selectively quantized model. The names are found in a
first, fully quantized conversion by matching its weighted ops to the ONNX nodes of the layers to keep float (the
same weight matching `phone-pipeline debug` uses), so nothing depends on how TensorFlow names ops.

Runs in a child process (`python -m pipeline.converters.tflite_fallback`) like onnx2tf: TensorFlow holds state.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.core.proc import python_module, run

MARK = "tflite_fallback: "  # prefixes the result line on stdout (TensorFlow prints there too)


def convert(saved_model: Path, calibration_nhwc_npy: Path, onnx_path: Path, float_nodes: list[str], out: Path,
            timeout: float = 1800) -> list[str]:
    """Write the int8 model with the ops of the ONNX nodes `float_nodes` in float to `out`; returns the TFLite
    tensor names kept float (one line naming a node that no op matched is a ToolError)."""
    args = {"saved_model": str(saved_model), "calibration": str(calibration_nhwc_npy), "onnx": str(onnx_path),
            "float_nodes": float_nodes, "out": str(out)}
    proc = run(python_module("pipeline.converters.tflite_fallback", json.dumps(args)),
               what="to_tflite: int8 with float layers (TensorFlow quantization debugger)", timeout=timeout)
    line = next(x for x in reversed(proc.stdout.decode(errors="replace").splitlines()) if x.startswith(MARK))
    return json.loads(line[len(MARK):])["kept_float"]


def _quantized(tf, saved_model: str, calib: np.ndarray, denylist: list[str]) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def samples():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True, denylisted_nodes=denylist)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=samples,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def _names(model: bytes, onnx_path: str, float_nodes: list[str]) -> list[str]:
    """TFLite output tensor names of the weighted ops matched to the ONNX nodes `float_nodes`."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    from pipeline.layers.tflite_layers import match_ops

    interp = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    matches = match_ops(interp, interp._get_ops_details(), details, onnx.load(onnx_path))
    by_node = {m.onnx_node: m.tflite_tensor for m in matches.values()}
    missing = [n for n in float_nodes if n not in by_node]
    if missing:
        raise SystemExit(f"no TFLite op matched the ONNX node {missing[0]}; cannot keep it in float")
    return [by_node[n] for n in float_nodes]


def _child(args: dict) -> None:
    from pipeline.core.netguard import block_network

    block_network()
    import tensorflow as tf

    calib = np.load(args["calibration"]).astype(np.float32)
    names = _names(_quantized(tf, args["saved_model"], calib, []), args["onnx"], args["float_nodes"])
    model = _quantized(tf, args["saved_model"], calib, names)
    out = Path(args["out"])
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(model)
    tmp.replace(out)
    print(MARK + json.dumps({"kept_float": names}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("args", help="JSON: saved_model, calibration, onnx, float_nodes, out")
    _child(json.loads(parser.parse_args().args))
