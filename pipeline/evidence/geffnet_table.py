"""Pass table for geffnet architectures: ONNX, TFLite fp32 and .pte fp32 parity, and pruning at ratio 0.3.

    python -m pipeline.evidence.geffnet_table OUT.json [ARCH ...]

Each architecture is built the way a recipe's `source = "package"` builds it (3x64x64, 10 classes), its
BatchNorm gets real statistics from Fashion-MNIST pictures (grey -> RGB, resized; random-init mobile networks give
near-constant logits otherwise, ../shared/DATA.md), and then every runtime is compared with PyTorch on 200 other
pictures: top-1 agreement and max abs error relative to the output range. Pruning goes through the pipeline's own
prune(), with its forward check; a failure is the pipeline's one-line reason.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ARCHS = ("mobilenetv3_small_100", "mobilenetv3_large_100", "mobilenetv2_100", "mnasnet_a1", "mnasnet_100",
         "fbnetc_100", "spnasnet_100", "efficientnet_lite0", "mixnet_s", "semnasnet_100", "efficientnet_b0",
         "tf_mobilenetv3_small_100")
SHAPE = (1, 3, 64, 64)


def _pictures(n: int, offset: int) -> np.ndarray:
    from pipeline.artifacts.preprocess import InputSpec
    from pipeline.data import fashion_mnist as fm
    from pipeline.data import fit_to_spec, to_tensor

    spec = InputSpec(64, 64, 3, (0.5,) * 3, (0.25,) * 3)
    images, _ = fm.load("test")
    return to_tensor(fit_to_spec(images[offset : offset + n], spec), spec)


def _compare(got: np.ndarray, ref: np.ndarray) -> dict:
    scale = float(ref.max() - ref.min())
    return {"agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "rel_max_err": float(np.abs(got - ref).max() / scale), "pass": None}


def measure(arch: str, work: Path) -> dict:
    from pipeline.artifacts.artifact import Artifact
    from pipeline.compression.pruning import PruneError, PruneSettings, prune
    from pipeline.converters import onnx2tf_adapter
    from pipeline.converters.executorch_lowering import lower
    from pipeline.converters.onnx_export import export
    from pipeline.models import sources
    from pipeline.runtimes import open_session

    torch.manual_seed(0)
    model = sources.build({"source": "package", "package": "geffnet", "arch": arch, "settings": {"num_classes": 10}})
    calib = torch.from_numpy(_pictures(256, 0))
    model.train()
    with torch.no_grad():
        for i in range(0, 256, 32):
            model(calib[i : i + 32])
    model.eval()
    x = _pictures(200, 5000)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    row: dict = {"arch": arch, "params": int(sum(p.numel() for p in model.parameters()))}

    def run(name: str, make) -> None:
        start = time.perf_counter()
        try:
            art = make()
            session = open_session(art)
            got = np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))])
            res = _compare(got, ref)
            res["pass"] = res["agreement"] >= 0.999 and res["rel_max_err"] <= 1e-4
        except Exception as exc:  # recorded as the column's one-line reason
            res = {"pass": False, "error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"}
        res["seconds"] = round(time.perf_counter() - start, 1)
        row[name] = res

    onnx_path = work / f"{arch}.onnx"

    def make_onnx():
        export(model, torch.zeros(SHAPE), onnx_path, 20)
        return Artifact("onnx", str(onnx_path), "onnx", "fp32", "NCHW", SHAPE)

    def make_tflite():
        files = onnx2tf_adapter.convert(onnx_path, work / f"tf-{arch}", np.ascontiguousarray(
            calib[:20].numpy().transpose(0, 2, 3, 1)), int8=False)
        return Artifact("tflite", str(files["fp32"]), "tflite", "fp32", "NHWC", (1, 64, 64, 3))

    def make_pte():
        path = work / f"{arch}.pte"
        path.write_bytes(lower(model, torch.zeros(SHAPE))[0])
        return Artifact("pte", str(path), "pte", "fp32", "NCHW", SHAPE)

    run("onnx", make_onnx)
    run("tflite_fp32", make_tflite)
    run("pte_fp32", make_pte)
    start = time.perf_counter()
    try:
        pruned, rep = prune(model, torch.zeros(SHAPE), PruneSettings(ratio=0.3, ignore=("classifier",)),
                            check=torch.from_numpy(x[:8]))
        with torch.no_grad():
            out = pruned(torch.from_numpy(x[:8]))
        row["prune_0.3"] = {"pass": tuple(out.shape) == (8, 10), "params_after": rep["after"]["params"],
                            "macs_before": rep["before"]["macs"], "macs_after": rep["after"]["macs"],
                            "left_unpruned": [x["reason"][:160] for x in rep["left_unpruned"]]}
    except PruneError as exc:
        row["prune_0.3"] = {"pass": False, "error": str(exc)[:200]}
    row["prune_0.3"]["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    out = Path(argv[0])
    archs = argv[1:] or ARCHS
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {r["arch"] for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            if arch in done:
                continue
            rows.append(measure(arch, Path(tmp)))
            out.write_text(json.dumps(rows, indent=1))
            r = rows[-1]
            print(arch, *(f"{k}={'ok' if r[k]['pass'] else 'FAIL'}" for k in ("onnx", "tflite_fp32", "pte_fp32",
                                                                              "prune_0.3")), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
