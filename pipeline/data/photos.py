"""Real photographs that scikit-image ships (a cat, coffee, a rocket, ...): an evaluation set without labels.

Used for pretrained ImageNet models, which are checked by agreement with their own fp32 predictions.
"""

from __future__ import annotations

import numpy as np

from pipeline.artifacts.preprocess import resize_bilinear, to_channels
from pipeline.core.errors import UserError
from pipeline.data import calibration_photos
from pipeline.data.source import DataSource, Split, unchanged

NAMES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "camera", "coins", "moon", "clock", "grass", "gravel", "brick")


def load(spec: dict) -> tuple[np.ndarray, tuple[str, ...]]:
    """uint8 N x H x W x C photos at the model's input size (half-pixel bilinear), and their names."""
    try:
        import skimage.data as sd
    except ImportError:
        raise UserError("the 'photos' dataset needs scikit-image (run `make setup`)") from None
    out = []
    for name in NAMES:
        img = to_channels(getattr(sd, name)(), spec["channels"])
        img = resize_bilinear(img, spec["height"], spec["width"])
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(out), NAMES


def _split(table: dict, which: str, spec: dict) -> Split:
    images, names = load(spec)
    return Split(images, None, names)


# EfficientNet-Lite's preprocessing, (pixel - 127) / 128: the photos are for ImageNet models.
SOURCE = DataSource("photos", unchanged, lambda table: {"height": 224, "width": 224, "channels": 3,
                                                        "mean": [127 / 255] * 3, "std": [128 / 255] * 3},
                    lambda table: tuple(f"imagenet-{i}" for i in range(1000)), _split, has_train=False,
                    fingerprint=lambda table: calibration_photos.fingerprint())  # int8 calibrates on those
