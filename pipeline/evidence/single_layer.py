"""One convolution of EfficientNet-Lite0's shapes as a one-op program of each runtime, fp32 and int8.

The same layer is built twice: as a Keras layer through TensorFlow's converter (LiteRT; int8 with int8 input and
output, as onnx2tf's full-integer files) and as a torch module through the pipeline's PT2E quantization and XNNPACK
lowering (ExecuTorch; float input and output, quantized inside the delegate). Random weights; the int8 versions are
calibrated on uniform [0, 6) inputs, the range a ReLU6 before the layer leaves.

    layer = ConvLayer(28, 240, None, 5, 1)   # EfficientNet-Lite0's 5x5 depthwise at 28x28
    litert_models(layer)["int8"], executorch_programs(layer)["int8"]   # .tflite and .pte bytes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads in the functions that build: a LiteRT child process of the evidence needs ConvLayer
    import torch


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution on a square input: depthwise when `channels_out` is None, with ReLU6 when `relu6`."""

    size: int
    channels_in: int
    channels_out: int | None
    kernel: int
    stride: int
    relu6: bool = True

    @property
    def depthwise(self) -> bool:
        return self.channels_out is None

    @property
    def name(self) -> str:
        if self.depthwise:
            what = f"depthwise {self.kernel}x{self.kernel} {self.size}x{self.size}x{self.channels_in}"
        else:
            what = f"conv {self.kernel}x{self.kernel} {self.size}x{self.size} {self.channels_in}->{self.channels_out}"
        return f"{what} s{self.stride}" + (" +ReLU6" if self.relu6 else "")


def calibration(layer: ConvLayer, count: int = 8) -> torch.Tensor:
    """`count` NCHW inputs, uniform in [0, 6), the same for every call."""
    import torch

    shape = (count, layer.channels_in, layer.size, layer.size)
    return 6 * torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def torch_module(layer: ConvLayer) -> torch.nn.Module:
    """The layer as a torch module in eval mode (padding kernel // 2 on every side)."""
    import torch

    out = layer.channels_out or layer.channels_in
    groups = layer.channels_in if layer.depthwise else 1
    conv = torch.nn.Conv2d(layer.channels_in, out, layer.kernel, layer.stride, layer.kernel // 2, groups=groups)
    return (torch.nn.Sequential(conv, torch.nn.ReLU6()) if layer.relu6 else torch.nn.Sequential(conv)).eval()


def executorch_programs(layer: ConvLayer) -> dict[str, bytes]:
    """{"fp32": .pte bytes, "int8": .pte bytes} of the layer, lowered to XNNPACK as the pipeline lowers models."""
    from pipeline.compression.quantization import ptq
    from pipeline.converters.executorch_lowering import lower

    module, calib = torch_module(layer), calibration(layer)
    return {"fp32": lower(module, calib[:1])[0], "int8": lower(ptq(module, calib), calib[:1])[0]}


def litert_models(layer: ConvLayer) -> dict[str, bytes]:
    """{"fp32": .tflite bytes, "int8": .tflite bytes} of the layer through TensorFlow's converter ("same" padding)."""
    import numpy as np
    import tensorflow as tf

    if layer.depthwise:
        conv = tf.keras.layers.DepthwiseConv2D(layer.kernel, layer.stride, padding="same")
    else:
        conv = tf.keras.layers.Conv2D(layer.channels_out, layer.kernel, layer.stride, padding="same")
    shape = (layer.size, layer.size, layer.channels_in)
    keras = tf.keras.Sequential([tf.keras.Input(shape, batch_size=1), conv]
                                + ([tf.keras.layers.ReLU(6.0)] if layer.relu6 else []))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras)
    fp32 = converter.convert()
    rng = np.random.default_rng(0)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([6 * rng.random((1, *shape), dtype=np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return {"fp32": fp32, "int8": converter.convert()}
