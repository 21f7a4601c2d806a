"""The one reference preprocessing: image bytes -> the tensor a model artifact expects.

Every step is float32 arithmetic in a fixed order, so that an app can reproduce it bit for bit (the Android demo's
Java port in android_demo/ does, and a test checks it):

1. colour: RGB -> grey is ``0.299 R + 0.587 G + 0.114 B`` (float32, summed left to right); grey -> RGB repeats.
2. resize (only when the size differs): bilinear with half-pixel centres, ``src = (dst + 0.5) * (in / out) - 0.5``,
   clamped to ``[0, in - 1]``; weights and sums in float32.
3. scale and normalise: ``(v / 255 - mean[c]) / std[c]``.
4. layout: NCHW or NHWC with a leading batch of 1.
5. int8 inputs only: ``clamp(rint(x / scale) + zero_point, -128, 127)`` (rint rounds half to even).

Example::

    >>> import numpy as np
    >>> spec = InputSpec(height=2, width=2, channels=1, mean=(0.5,), std=(0.5,))
    >>> preprocess(np.array([[0, 255], [255, 0]], dtype=np.uint8), spec, layout="NHWC").ravel().tolist()
    [-1.0, 1.0, 1.0, -1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input, independent of the artifact's layout."""

    height: int
    width: int
    channels: int  # 1 (grey) or 3 (RGB)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(int(d["height"]), int(d["width"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]))


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 HxW or HxWxC -> float32 HxWxchannels (values still 0..255)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:  # drop alpha
        img = img[:, :, :3]
    img = img.astype(F32)
    if channels == 1 and img.shape[2] == 3:
        grey = img[:, :, 0] * F32(0.299) + img[:, :, 1] * F32(0.587)
        grey = grey + img[:, :, 2] * F32(0.114)
        return grey[:, :, None].astype(F32)
    if channels == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] != channels:
        raise ValueError(f"image has {img.shape[2]} channels, model wants {channels}")
    return img


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ratio = F32(n_in) / F32(n_out)
    src = (np.arange(n_out, dtype=F32) + F32(0.5)) * ratio - F32(0.5)
    src = np.clip(src, F32(0), F32(n_in - 1)).astype(F32)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo.astype(F32)).astype(F32)
    return lo, hi, frac


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 HxWxC -> float32 height x width x C, half-pixel bilinear (see module docstring)."""
    if img.shape[0] == height and img.shape[1] == width:
        return img
    y0, y1, fy = _axis_weights(img.shape[0], height)
    x0, x1, fx = _axis_weights(img.shape[1], width)
    fx_ = fx[None, :, None]
    one = F32(1)
    top = img[y0][:, x0] * (one - fx_) + img[y0][:, x1] * fx_
    bottom = img[y1][:, x0] * (one - fx_) + img[y1][:, x1] * fx_
    fy_ = fy[:, None, None]
    return (top * (one - fy_) + bottom * fy_).astype(F32)


def normalise(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    mean = np.asarray(spec.mean, dtype=F32)
    std = np.asarray(spec.std, dtype=F32)
    return ((img / F32(255) - mean) / std).astype(F32)


def preprocess(image: np.ndarray, spec: InputSpec, layout: str = "NCHW") -> np.ndarray:
    """uint8 image (HxW grey, HxWx3 RGB) -> float32 tensor of shape [1, C, H, W] or [1, H, W, C]."""
    img = to_channels(image, spec.channels)
    img = resize_bilinear(img, spec.height, spec.width)
    img = normalise(img, spec)
    if layout == "NCHW":
        img = img.transpose(2, 0, 1)
    elif layout != "NHWC":
        raise ValueError(f"unknown layout {layout!r}: use NCHW or NHWC")
    return np.ascontiguousarray(img[None])


def normalise_batch(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 N x H x W (grey) or N x H x W x C at the model's size -> float32 N x C x H x W; same maths as above."""
    imgs = images.astype(F32)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    imgs = normalise(imgs, spec)
    # A real copy: for one channel the transposed array already counts as contiguous, but its strides make torch
    # treat the batch as channels_last, and a model's `x.view(n, -1)` after a conv then fails.
    return imgs.transpose(0, 3, 1, 2).copy(order="C")


def quantize_int8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 -> int8 with the TFLite/ExecuTorch affine rule, rounding half to even."""
    q = np.rint(x.astype(F32) / F32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)
