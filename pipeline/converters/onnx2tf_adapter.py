"""onnx2tf behind a narrow door: ONNX file (+ calibration images) in, TFLite files out, no network.

onnx2tf runs in a child process (`python -m pipeline.converters.onnx2tf_adapter`) because it holds TensorFlow
state, prints a lot and fetches a sample calibration file from the internet whenever the input looks like an RGB
image; the child blocks sockets and replaces that fetch with our own data.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from pipeline.core.errors import ToolError, free_space, shown
from pipeline.core.proc import python_module, run

# onnx2tf's file suffixes for the variants it writes, by our precision name.
VARIANTS = {
    "fp32": "_float32.tflite",
    "fp16": "_float16.tflite",
    "int8": "_full_integer_quant.tflite",  # int8 input and output
}


def convert(onnx_path: Path, work_dir: Path, calibration_nhwc: np.ndarray | None, int8: bool,
            timeout: float = 1800, simplify: bool = True) -> dict[str, Path]:
    """Convert `onnx_path`; returns {precision: tflite path}. `calibration_nhwc`: float32, already normalised.

    `simplify`: let onnx2tf run onnxsim on the file first. A file our own exporter wrote is already optimised
    (constants folded, shapes static): for the default model onnxsim took 6 of the 12 s of a conversion, and every
    TFLite file came out byte for byte the same without it."""
    work_dir = work_dir.resolve()  # the child runs with work_dir as its cwd
    work_dir.mkdir(parents=True, exist_ok=True)
    model_copy = work_dir / "model.onnx"  # onnx2tf simplifies its input in place: give it a copy
    shutil.copyfile(onnx_path, model_copy)
    calib = work_dir / "calibration.npy"
    if calibration_nhwc is not None:
        np.save(calib, calibration_nhwc.astype(np.float32))
    args = {"onnx": str(model_copy), "out": str(work_dir / "tf"), "calibration": str(calib) if calibration_nhwc
            is not None else "", "int8": int8, "input_name": input_name(model_copy), "simplify": simplify}
    try:
        run(python_module("pipeline.converters.onnx2tf_adapter", json.dumps(args)), what="to_tflite: onnx2tf",
            timeout=timeout, cwd=work_dir)
    except ToolError as exc:
        if "No space left on device" not in getattr(exc, "detail", ""):
            raise
        folder, free = free_space(work_dir)  # the child's disk filled: where, and how much is left; not a bug
        raise ToolError(f"to_tflite: onnx2tf: no space left on the disk of {shown(folder)} ({free / 1e6:.1f} MB "
                        "free); free space there or give --build-dir on a disk with room") from None
    out = {}
    for precision, suffix in VARIANTS.items():
        if precision == "int8" and not int8:
            continue
        path = work_dir / "tf" / f"model{suffix}"
        if path.exists():
            out[precision] = path
    return out


def input_name(path: Path) -> str:
    """The graph input that takes the picture (exported files call it 'input'; a user's file has its own name)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in weights)


def _child(args: dict) -> None:
    from pipeline.core.netguard import block_network

    block_network()
    import onnx2tf.onnx2tf as o2t

    calib = np.load(args["calibration"]) if args["calibration"] else None

    def local_sample_data() -> np.ndarray:
        if calib is None:
            raise RuntimeError("onnx2tf asked for sample images and none were given")
        return calib[:20]

    o2t.download_test_image_data = local_sample_data
    kwargs = dict(
        input_onnx_file_path=args["onnx"],
        output_folder_path=args["out"],
        output_integer_quantized_tflite=bool(args["int8"]),
        not_use_onnxsim=not args.get("simplify", True),
        non_verbose=True,
        verbosity="error",
    )
    if calib is not None:
        # [name, data, mean, std]: the data is already normalised, so mean 0 and std 1 leave it alone.
        c = calib.shape[-1]
        kwargs["custom_input_op_name_np_data_path"] = [
            [args["input_name"], args["calibration"], np.zeros((1, 1, 1, c), np.float32),
             np.ones((1, 1, 1, c), np.float32)]
        ]
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            o2t.convert(**kwargs)
    except BaseException:
        sys.stderr.write(log.getvalue()[-6000:])
        raise


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("args", help="JSON: onnx, out, calibration, int8")
    _child(json.loads(parser.parse_args().args))
