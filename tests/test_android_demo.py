"""The Android demo's plain-Java core on the host JVM: its JUnit tests, and bit-exact parity of its preprocessing
with pipeline/artifacts/preprocess.py on real photos (grey and RGB, resized and not, float NCHW/NHWC and int8)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.android import host_jvm
from pipeline.artifacts.preprocess import InputSpec, preprocess, quantize_int8
from pipeline.release import checksums

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]


def _artifact(name: str, fmt: str, layout: str, spec: InputSpec, model: bytes, quant: dict | None = None) -> dict:
    h, w, c = spec.height, spec.width, spec.channels
    return {
        "name": name, "file": f"models/{name}.{fmt}", "format": fmt, "precision": "int8" if quant else "fp32",
        "layout": layout, "input_shape": [1, c, h, w] if layout == "NCHW" else [1, h, w, c],
        "input_dtype": "int8" if quant else "float32", "input_quantization": quant,
        "output_quantization": {"scale": 0.1, "zero_point": 3} if quant else None,
        "sha256": hashlib.sha256(model).hexdigest(),
    }


def write_fixture_bundle(root: Path, spec: InputSpec, images: dict[str, np.ndarray],
                         int8: dict | None = None) -> dict:
    """A release bundle in the pipeline's metadata shape: real PNG samples, model files of stand-in bytes
    (the host JVM has no runtime to load them) with their true SHA-256, zero recorded outputs and SHA256SUMS, so
    that it passes the checks copy-bundle makes (all but running the models). Returns the metadata."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "samples").mkdir(exist_ok=True)
    artifacts = []
    for name, fmt, layout, quant in [("tflite-fp32", "tflite", "NHWC", None), ("pte-fp32", "pte", "NCHW", None),
                                     ("tflite-int8", "tflite", "NHWC", int8 or {"scale": 0.0123, "zero_point": -5}),
                                     ("pte-int8", "pte", "NCHW", int8 or {"scale": 0.0123, "zero_point": -5})]:
        model = f"stand-in for {name}".encode()
        (root / f"models/{name}.{fmt}").write_bytes(model)
        artifacts.append({**_artifact(name, fmt, layout, spec, model, quant),
                          "sample_outputs": f"samples/outputs/{name}.npy"})
    samples = []
    for i, (file_name, img) in enumerate(images.items()):
        Image.fromarray(img).save(root / "samples" / file_name)
        samples.append({"file": f"samples/{file_name}", "label": i % len(FASHION_LABELS)})
    metadata = {
        "schema": "phone-pipeline/bundle/1",
        "model": {"name": "fashion-mnist-mobilenetv2", "version": "0.1.0", "task": "image-classification"},
        "input": spec.to_dict(),
        "labels": FASHION_LABELS,
        "output": {"kind": "logits", "classes": len(FASHION_LABELS)},
        "artifacts": artifacts,
        "samples": samples,
    }
    (root / "metadata.json").write_text(json.dumps(metadata, indent=2))
    (root / "samples" / "outputs").mkdir()
    for a in artifacts:
        np.save(root / a["sample_outputs"], np.zeros((len(samples), len(FASHION_LABELS)), "<f4"))
    checksums.write(root)
    return metadata


def _resized(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BILINEAR))


def photos() -> dict[str, np.ndarray]:
    """Real photos at sizes that need resizing (down and up) and that don't, grey, RGB and RGBA."""
    from skimage import data

    camera, chelsea, coffee = data.camera(), data.chelsea(), data.coffee()
    rgba = np.dstack([_resized(chelsea, 36, 30), np.full((30, 36), 200, np.uint8)])
    return {
        "camera-40x40-grey.png": _resized(camera, 40, 40),
        "camera-28x28-grey.png": _resized(camera, 28, 28),
        "camera-32x32-grey.png": _resized(camera, 32, 32),
        "chelsea-45x30-rgb.png": _resized(chelsea, 45, 30),
        "coffee-20x24-rgb.png": _resized(coffee, 20, 24),
        "coffee-32x32-rgb.png": _resized(coffee, 32, 32),
        "chelsea-36x30-rgba.png": rgba,
    }


GREY_28 = InputSpec(height=28, width=28, channels=1, mean=(0.2860,), std=(0.3530,))
RGB_32 = InputSpec(height=32, width=32, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def core_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return host_jvm.compile_core(tmp_path_factory.mktemp("android-core-classes"))


def test_core_junit_tests_pass_on_the_host_jvm(core_classes: Path) -> None:
    assert len(host_jvm.test_classes(core_classes)) >= 8
    assert host_jvm.run_junit(core_classes).startswith("OK (")


def test_core_has_no_android_imports() -> None:
    from pipeline.android import sources

    offenders = [p.name for p in sources.java_files(sources.CORE_JAVA) if "import android" in p.read_text()]
    assert offenders == []


def _reference_bytes(png: Path, spec: InputSpec, artifact: dict) -> bytes:
    x = preprocess(np.asarray(Image.open(png)), spec, layout=artifact["layout"])
    if artifact["input_dtype"] == "int8":
        q = artifact["input_quantization"]
        return quantize_int8(x, q["scale"], q["zero_point"]).tobytes()
    return x.astype("<f4").tobytes()


@pytest.mark.parametrize("spec", [GREY_28, RGB_32], ids=["grey28", "rgb32"])
def test_java_preprocessing_is_bit_identical_to_the_reference(
    spec: InputSpec, core_classes: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    metadata = write_fixture_bundle(bundle, spec, photos(), int8={"scale": 0.0171, "zero_point": 3})
    compared = 0
    for sample in metadata["samples"]:
        png = bundle / sample["file"]
        for artifact in metadata["artifacts"]:
            want = _reference_bytes(png, spec, artifact)
            got = host_jvm.preprocess_with_java(
                core_classes, bundle / "metadata.json", artifact["name"], png, tmp_path / "java.bin"
            )
            assert len(got) == len(want), (png.name, artifact["name"])
            if got != want:
                dtype = np.int8 if artifact["input_dtype"] == "int8" else np.dtype("<f4")
                a, b = np.frombuffer(got, dtype), np.frombuffer(want, dtype)
                diff = np.flatnonzero(a != b)
                pytest.fail(f"{png.name} / {artifact['name']}: {diff.size} of {a.size} values differ, "
                            f"first at {diff[0]}: java {a[diff[0]]!r} vs python {b[diff[0]]!r}")
            compared += 1
    assert compared == len(photos()) * 4
