"""What a .tflite file declares about itself, read with LiteRT's interpreter (imported only when asked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def io_quantization(path: Path) -> tuple[str, dict | None, dict | None]:
    """(input dtype, input scale/zero point, output scale/zero point) as the TFLite file declares them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def qparams(detail: dict) -> dict | None:
        scale, zero = detail["quantization"]
        return {"scale": float(scale), "zero_point": int(zero)} if scale else None

    return np.dtype(inp["dtype"]).name, qparams(inp), qparams(out)
