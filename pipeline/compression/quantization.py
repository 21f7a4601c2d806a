"""int8 quantization with PT2E and ExecuTorch's XNNPACK quantizer (per-channel symmetric int8 weights).

Two ways in: post-training quantization (observe calibration batches, then convert) and quantization-aware training
(fake-quantized training of an exported graph, then convert). Both return the converted PyTorch model, the quantized
reference that the ExecuTorch program must reproduce.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from pipeline.training import Distillation, TrainSettings, train

# Exported QAT graphs are fixed to a batch range; evaluation batches must fit under it (STACK.md: 64 was too small).
MAX_BATCH = 1024


def _quantizer(qat: bool):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


def export_for_quantization(model: nn.Module, example_batch: torch.Tensor) -> torch.fx.GraphModule:
    """torch.export with a dynamic batch dimension (calibration, training and evaluation use other batch sizes)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(model, (example_batch,), dynamic_shapes=({0: batch},)).module()


def ptq(model: nn.Module, calibration: torch.Tensor, batch: int = 32) -> torch.fx.GraphModule:
    """Post-training quantization: observe `calibration` (normalised NCHW) and convert."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = export_for_quantization(copy.deepcopy(model).eval(), calibration[:2])
    prepared = prepare_pt2e(graph, _quantizer(qat=False))
    with torch.no_grad():
        for i in range(0, len(calibration), batch):
            prepared(calibration[i : i + batch])
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def qat(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    distill: Distillation | None = None,
) -> tuple[torch.fx.GraphModule, nn.Module]:
    """Quantization-aware training; returns (converted int8 reference, plain float module with the QAT-tuned weights).

    The float module is what onnx2tf gets for TFLite: a Q/DQ ONNX file of the PT2E program loses its accuracy in
    onnx2tf (measured by pipeline/experiments/qdq_through_onnx2tf.py), so TFLite int8 comes from onnx2tf's own
    calibration of these QAT-tuned weights.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.fake_quantize import disable_observer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    plain = copy.deepcopy(model).eval()  # torch.export shares parameters: train a copy, keep `model` untouched
    graph = export_for_quantization(plain, images[:2])
    prepared = prepare_qat_pt2e(graph, _quantizer(qat=True))
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
    target = plain.state_dict()
    missing = [k for k in target if k not in source and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"QAT graph lost the float tensors {missing[:3]}")
    plain.load_state_dict({k: source[k] if k in source else v for k, v in target.items()})
