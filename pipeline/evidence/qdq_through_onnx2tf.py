"""Can QAT-learned int8 ranges reach TFLite through a Q/DQ ONNX file and onnx2tf? Measure it.

Takes a run's PT2E-quantized QAT reference (`pt2-*-int8-qat`), exports it to ONNX (QuantizeLinear/DequantizeLinear
pairs carry the learned scales), runs that file in ONNX Runtime (optimisations off: ORT's fusions change int8 results
on CPUs without VNNI) and converts it with onnx2tf, then scores every form on the run's evaluation set. Writes
qdq_evidence.json into the run folder and prints one line per form.

    python -m pipeline.evidence.qdq_through_onnx2tf build/runs/fashion-mnist-mobilenetv2__host
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact, atomic_write_json, finalize
from pipeline.artifacts.manifest import artifacts
from pipeline.converters import onnx2tf_adapter
from pipeline.converters.onnx_export import export
from pipeline.engine.recipes import load_recipe
from pipeline.runtimes import open_session
from pipeline.runtimes.onnxruntime_session import OnnxRuntimeSession


def _score(name: str, logits: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict:
    return {"form": name, "accuracy": float((logits.argmax(1) == labels).mean()),
            "agreement_with_pt2e": float((logits.argmax(1) == reference.argmax(1)).mean())}


def measure(run_dir: Path) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    arts = {name: Artifact.from_dict(a) for name, a in artifacts(manifest).items()}
    qat_ref = next(a for n, a in arts.items() if n.startswith("pt2-") and n.endswith("-int8-qat"))
    recipe = load_recipe(manifest["recipe"]["path"])
    split = data.eval_split(recipe)
    x = data.to_tensor(split.images, data.input_spec(recipe))
    work = run_dir / "qdq_evidence"
    work.mkdir(exist_ok=True)
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops

    module = torch.export.load(qat_ref.path).module()
    with torch.no_grad():
        reference = np.concatenate([module(torch.from_numpy(x[i : i + 500])).numpy() for i in range(0, len(x), 500)])
    rows = [_score("PyTorch PT2E QAT reference", reference, split.labels, reference)]
    onnx_path = work / "qat_qdq.onnx"
    export(module, torch.zeros(qat_ref.input_shape), onnx_path, 20)
    import onnx

    ops = sorted({n.op_type for n in onnx.load(str(onnx_path)).graph.node})
    qdq = Artifact(name="onnx-qdq", path=str(onnx_path), format="onnx", precision="int8", layout="NCHW",
                   input_shape=qat_ref.input_shape)
    ort = OnnxRuntimeSession(qdq, threads=1, optimize=False)
    rows.append(_score("Q/DQ ONNX in ONNX Runtime (optimisations off)",
                       np.concatenate([ort.run(x[i : i + 1]) for i in range(len(x))]), split.labels, reference))
    calib = data.to_tensor(data.calibration_images(recipe), data.input_spec(recipe)).transpose(0, 2, 3, 1)
    files = onnx2tf_adapter.convert(onnx_path, work / "onnx2tf", np.ascontiguousarray(calib), int8=False)
    n, c, h, w = qat_ref.input_shape
    tfl = Artifact(name="tflite-from-qdq", path=str(files["fp32"]), format="tflite", precision="fp32", layout="NHWC",
                   input_shape=(n, h, w, c))
    session = open_session(tfl)
    rows.append(_score("Q/DQ ONNX through onnx2tf, run in LiteRT",
                       np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))]), split.labels, reference))
    shipped = next((a for nm, a in arts.items() if nm.startswith("tflite-") and nm.endswith("-int8-qat")), None)
    if shipped is not None:
        s = open_session(shipped)
        rows.append(_score(f"shipped {shipped.name} (onnx2tf int8 calibration of the QAT-tuned float weights)",
                           np.concatenate([s.run(x[i : i + 1]) for i in range(len(x))]), split.labels, reference))
    found = explain(manifest, finalize(qdq, ("onnx",)), finalize(tfl, ("onnx2tf",)), work / "run")
    result = {"run": str(run_dir), "samples": int(len(x)), "qdq_onnx_ops": ops, "forms": rows, "debug": found}
    atomic_write_json(run_dir / "qdq_evidence.json", result)
    return result


def explain(manifest: dict, qdq: Artifact, tfl: Artifact, folder: Path) -> dict:
    """`debug --against source` on the converted file: the layer where onnx2tf's output leaves the Q/DQ file's.

    The two files go into a copy of the run's manifest (in `folder`) as artifacts of their own, so the debug page is
    made exactly as for a run's artifacts. The threshold is 20 dB: both sides emulate the same int8 rounding in
    float, so a faithful conversion differs only where a value sits on a rounding boundary.
    """
    from pipeline.debug import debug

    tfl = replace(tfl, extra={**tfl.extra, "source": qdq.name}, reference=qdq.name)
    record = {"name": "qdq_evidence", "key": "", "cached": False, "seconds": 0.0, "data": {},
              "artifacts": [qdq.to_dict(), tfl.to_dict()]}
    atomic_write_json(folder / "manifest.json", {**manifest, "stages": [*manifest["stages"], record]})
    # an experiment on the developer's own run: its recorded recipe is the one to use
    page = debug(folder, tfl.name, min_sqnr_db=20.0, against="source", recipe=manifest["recipe"]["path"])
    found = json.loads(page.with_suffix(".json").read_text())
    return {"page": str(page), "first_divergent_layer": found["first_divergent_layer"],
            "worst_layer": found["worst_layer"], "worst_sqnr_db": found["worst_sqnr_db"],
            "layers_compared": len(found["layers"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    result = measure(parser.parse_args().run_dir)
    for row in result["forms"]:
        print(f"{row['accuracy']:.4f} accuracy, {row['agreement_with_pt2e']:.4f} agreement: {row['form']}")
    print(f"Q/DQ ONNX ops: {', '.join(result['qdq_onnx_ops'])}")
    d = result["debug"]
    print(f"layer by layer ({d['layers_compared']} layers, LiteRT against ONNX Runtime on the Q/DQ file): first "
          f"divergent {d['first_divergent_layer']}, worst {d['worst_layer']} ({d['worst_sqnr_db']} dB): {d['page']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
