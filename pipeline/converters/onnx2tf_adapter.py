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


def convert(onnx_path: Path, work_dir: Path, calibration_nhwc: np.ndarray | list[np.ndarray] | None, int8: bool,
            timeout: float = 1800, simplify: bool = True, keep_layout: tuple[str, ...] = ()) -> dict[str, Path]:
    """Convert `onnx_path`; returns {precision: tflite path}. `calibration_nhwc`: float32, already normalised, one
    array or one per graph input in the layout the TensorFlow graph takes (NHWC for pictures; as the model has it for
    the inputs named in `keep_layout`).

    `keep_layout`: inputs that are not pictures. onnx2tf turns every 3-D, 4-D and 5-D input channels-last (a series
    of (C, T) becomes (T, C)) unless told to keep it; these keep the model's own layout.

    `simplify`: let onnx2tf run onnxsim on the file first. A file our own exporter wrote is already optimised
    (constants folded, shapes static): for the default model onnxsim took 6 of the 12 s of a conversion, and every
    TFLite file came out byte for byte the same without it."""
    work_dir = work_dir.resolve()  # the child runs with work_dir as its cwd
    work_dir.mkdir(parents=True, exist_ok=True)
    model_copy = work_dir / "model.onnx"  # onnx2tf simplifies its input in place: give it a copy
    shutil.copyfile(onnx_path, model_copy)
    names = input_names(model_copy)
    calibration = []
    if calibration_nhwc is not None:
        arrays = [calibration_nhwc] if isinstance(calibration_nhwc, np.ndarray) else list(calibration_nhwc)
        for i, (name, array) in enumerate(zip(names, arrays, strict=True)):
            path = work_dir / ("calibration.npy" if i == 0 else f"calibration_{i}.npy")
            np.save(path, np.asarray(array, np.float32))
            calibration.append([name, str(path)])
    args = {"onnx": str(model_copy), "out": str(work_dir / "tf"), "calibration": calibration, "int8": int8,
            "simplify": simplify, "keep_layout": [n for n in keep_layout if n in names]}
    try:
        run(python_module("pipeline.converters.onnx2tf_adapter", json.dumps(args)), what="to_tflite: onnx2tf",
            timeout=timeout, cwd=work_dir)
    except ToolError as exc:
        if "No space left on device" not in getattr(exc, "detail", ""):
            raise
        # the child's disk filled: where, how much is left, and what it had written by then (how much onnx2tf
        # writes in all is not known before it runs, so the need is given as more than what it managed); not a bug
        folder, free = free_space(work_dir)
        written = sum(f.stat().st_size for f in work_dir.rglob("*") if f.is_file() and not f.is_symlink())
        raise ToolError(f"to_tflite: onnx2tf: no space left on the disk of {shown(folder)} ({free / 1e6:.1f} MB "
                        f"free; it needs more than the {written / 1e6:.1f} MB it had written); free space there or "
                        "give --build-dir on a disk with room") from None
    out = {}
    for precision, suffix in VARIANTS.items():
        if precision == "int8" and not int8:
            continue
        path = work_dir / "tf" / f"model{suffix}"
        if path.exists():
            out[precision] = path
    return out


def input_names(path: Path) -> list[str]:
    """The graph's inputs in order (exported files call a picture 'input'; a user's file has its own names)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}  # opset < 9 files list their weights as inputs too
    return [i.name for i in model.graph.input if i.name not in weights]


def input_name(path: Path) -> str:
    """The graph's first input."""
    return input_names(path)[0]


def _child(args: dict) -> None:
    from pipeline.core.netguard import block_network

    block_network()
    import onnx2tf.onnx2tf as o2t

    calibration = args["calibration"]
    calib = np.load(calibration[0][1]) if calibration else None

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
    if args["keep_layout"]:
        kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = args["keep_layout"]
    if calibration:
        # [name, data, mean, std]: the data is already normalised, so mean 0 and std 1 leave it alone.
        kwargs["custom_input_op_name_np_data_path"] = [
            [name, path, np.float32(0.0), np.float32(1.0)] for name, path in calibration]
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
