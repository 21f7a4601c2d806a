"""The reference preprocessing: layouts, normalisation, resizing and int8 quantization."""

from __future__ import annotations

import doctest

import numpy as np

import pipeline.artifacts.preprocess as pp
from pipeline.artifacts.preprocess import InputSpec, normalise_batch, preprocess, quantize_int8


def test_docstring_examples_hold():
    assert doctest.testmod(pp).failed == 0


def test_batch_and_single_image_paths_agree_bit_for_bit():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    spec = InputSpec(28, 28, 1, (0.286,), (0.353,))
    batch = normalise_batch(images, spec)
    single = np.concatenate([preprocess(img, spec) for img in images])
    assert batch.dtype == np.float32 and np.array_equal(batch, single)


def test_nhwc_is_the_transpose_of_nchw():
    img = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    spec = InputSpec(10, 12, 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    assert np.array_equal(preprocess(img, spec, "NCHW").transpose(0, 2, 3, 1), preprocess(img, spec, "NHWC"))


def test_resize_keeps_a_constant_image_constant_and_hits_the_right_size():
    img = np.full((37, 53, 3), 200, np.uint8)
    out = preprocess(img, InputSpec(16, 16, 3, (0.0,) * 3, (1.0,) * 3), "NHWC")
    assert out.shape == (1, 16, 16, 3) and np.allclose(out, 200 / 255)


def test_int8_quantization_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0], np.float32)
    assert quantize_int8(x, 1.0, 0).tolist() == [0, 2, 2, 0, 127, -128]
