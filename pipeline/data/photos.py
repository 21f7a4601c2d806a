"""Real photographs that scikit-image ships (a cat, coffee, a rocket, ...): an evaluation set without labels.

Used for pretrained ImageNet models, which are checked by agreement with their own fp32 predictions.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import UserError
from pipeline.preprocess import InputSpec, resize_bilinear, to_channels

NAMES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "camera", "coins", "moon", "clock", "grass", "gravel", "brick")


def load(spec: InputSpec) -> tuple[np.ndarray, tuple[str, ...]]:
    """uint8 N x H x W x C photos at the model's input size (half-pixel bilinear), and their names."""
    try:
        import skimage.data as sd
    except ImportError:
        raise UserError("the 'photos' dataset needs scikit-image (run `make setup`)") from None
    out = []
    for name in NAMES:
        img = to_channels(getattr(sd, name)(), spec.channels)
        img = resize_bilinear(img, spec.height, spec.width)
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(out), NAMES
