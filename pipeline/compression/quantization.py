"""int8 quantization with PT2E and ExecuTorch's XNNPACK quantizer (per-channel symmetric int8 weights).

Two ways in: post-training quantization (observe calibration batches, then convert) and quantization-aware training
(fake-quantized training of an exported graph, then convert). Both return the converted PyTorch model, the quantized
reference that the ExecuTorch program must reproduce.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn

from pipeline.artifacts.model_io import Flat, as_list, batch_dims
from pipeline.training.loop import Distillation, TrainSettings, train

# Exported QAT graphs are fixed to a batch range; evaluation batches must fit under it (STACK.md: 64 was too small).
MAX_BATCH = 1024


WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _quantizer(qat: bool, quantized: Callable[[torch.fx.Node], bool] | None = None, fuse_clamp: bool = True):
    """The XNNPACK quantizer (per-channel symmetric weights), zero pads sharing their input's int8 parameters
    (pad_sharing: else every "same" pad runs in float between two converts); `quantized(node)` False leaves a node
    in float. `fuse_clamp`: conv + ReLU6 quantized after the clamp (conv_clamp), as TensorFlow's converter does."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    from pipeline.compression.conv_clamp import ConvClampFusion
    from pipeline.compression.pad_sharing import ZeroPadSharing

    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
    quantizer = XNNPACKQuantizer().set_global(config)
    if quantized is not None:  # set_module_name cannot take "no config"; a filter can
        quantizer.set_filter_function(quantized)
    clamps = [ConvClampFusion(config, quantized)] if fuse_clamp else []  # before XNNPACK's: it skips what is taken
    return ComposableQuantizer([*clamps, quantizer, ZeroPadSharing()])  # pads last: they follow their consumers


def weighted_layers(model: nn.Module) -> list[str]:
    """Names of the convolution and linear modules (subclasses too), in definition order: the units of fallback."""
    return [name for name, m in model.named_modules() if isinstance(m, WEIGHTED) and name]


def layer_units(graph: torch.fx.GraphModule, layers: list[str]) -> dict[str, str]:
    """node name -> the weighted layer it belongs to: the layer's own nodes and the ones after it (BatchNorm,
    activation, add) up to the next weighted layer, in graph order. The quantizer annotates a conv with its
    activation as one pattern, so a layer kept float must take its activation with it."""
    wanted, units, current = set(layers), {}, None
    for node in graph.graph.nodes:
        stack = [v[0] for v in (node.meta.get("nn_module_stack") or {}).values()]
        own = next((name for name in reversed(stack) if name in wanted), None)
        if own is not None:
            current = own
        if current is not None and node.op == "call_function":
            units[node.name] = current
    return units


def export_for_quantization(model: nn.Module, example_batch: torch.Tensor | list[torch.Tensor]) -> torch.fx.GraphModule:
    """torch.export with a dynamic batch dimension shared by every input (calibration, training and evaluation use
    other batch sizes); a model returning tuples or dicts is exported with its outputs flattened."""
    examples = tuple(as_list(example_batch))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        returned = model(*examples)
    module = model if isinstance(returned, torch.Tensor) else Flat(model)
    return torch.export.export(module, examples, dynamic_shapes=batch_dims(module, len(examples), batch)).module()


def rows(inputs: torch.Tensor | list[torch.Tensor], start: int, stop: int) -> list[torch.Tensor]:
    """Samples start..stop of every input."""
    return [t[start:stop] for t in as_list(inputs)]


def count(inputs: torch.Tensor | list[torch.Tensor]) -> int:
    return len(as_list(inputs)[0])


def ptq(model: nn.Module, calibration: torch.Tensor | list[torch.Tensor], batch: int = 32,
        float_modules: tuple[str, ...] = (), graph: torch.fx.GraphModule | None = None,
        only_modules: tuple[str, ...] = (), fuse_clamp: bool = True) -> torch.fx.GraphModule:
    """Post-training quantization: observe `calibration` (model inputs: one tensor or one per input) and convert.

    `float_modules`: weighted layers (with the ops after them, see `layer_units`) kept in float (fallback);
    `only_modules`: quantize these layers alone (sensitivity);
    `graph`: the model already exported for quantization (reused across many quantizations of one model; it is
    copied, not changed);
    `fuse_clamp`: False quantizes a convolution's output before its ReLU6, as XNNPACK's quantizer alone does.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = copy.deepcopy(graph) if graph is not None else export_for_quantization(copy.deepcopy(model).eval(),
                                                                                    rows(calibration, 0, 2))
    quantized = None
    if float_modules or only_modules:
        units = layer_units(graph, weighted_layers(model))
        unknown = [m for m in (*float_modules, *only_modules) if m not in set(units.values())]
        if unknown:
            raise ValueError(f"no convolution or linear layer named {unknown[0]!r} in the model")
        keep, only = set(float_modules), set(only_modules)

        def quantized(node: torch.fx.Node) -> bool:
            if node.op != "call_function":
                return True  # weights and inputs go with the op that uses them
            unit = units.get(node.name)
            return unit not in keep and (not only or unit in only)

    prepared = prepare_pt2e(graph, _quantizer(qat=False, quantized=quantized, fuse_clamp=fuse_clamp))
    with torch.no_grad():
        for i in range(0, count(calibration), batch):
            prepared(*rows(calibration, i, i + batch))
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def qat(
    model: nn.Module,
    images: torch.Tensor | list[torch.Tensor],
    labels: torch.Tensor,
    settings: TrainSettings,
    distill: Distillation | None = None,
    fuse_clamp: bool = True,
) -> tuple[torch.fx.GraphModule, nn.Module]:
    """Quantization-aware training; returns (converted int8 reference, plain float module with the QAT-tuned weights).

    The float module is what onnx2tf gets for TFLite: a Q/DQ ONNX file of the PT2E program loses its accuracy in
    onnx2tf (measured by pipeline/evidence/qdq_through_onnx2tf.py), so TFLite int8 comes from onnx2tf's own
    calibration of these QAT-tuned weights.
    `fuse_clamp`: as in `ptq` (conv -> BatchNorm -> ReLU6 fake-quantized once, after the clamp).
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.fake_quantize import disable_observer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    plain = copy.deepcopy(model).eval()  # torch.export shares parameters: train a copy, keep `model` untouched
    graph = export_for_quantization(plain, rows(images, 0, 2))
    prepared = prepare_qat_pt2e(graph, _quantizer(qat=True, fuse_clamp=fuse_clamp))
    train(prepared, images, labels, settings, distill=distill, desc="qat",
          modes=(move_exported_model_to_train, move_exported_model_to_eval))
    prepared.apply(disable_observer)  # evaluation batches must not move the learned ranges
    move_exported_model_to_eval(prepared)
    tuned = copy.deepcopy(model).eval()
    _copy_float_state(prepared, tuned)
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted, tuned


def _copy_float_state(prepared: torch.fx.GraphModule, plain: nn.Module) -> None:
    """Copy QAT-trained parameters and BatchNorm statistics (same names in the exported graph) into `plain`."""
    source = prepared.state_dict()
    if any(k.startswith("model.") for k in source):  # exported through `Flat` (several inputs or outputs)
        source = {k.removeprefix("model."): v for k, v in source.items()}
    target = plain.state_dict()
    missing = [k for k in target if k not in source and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"QAT graph lost the float tensors {missing[:3]}")
    plain.load_state_dict({k: source[k] if k in source else v for k, v in target.items()})
