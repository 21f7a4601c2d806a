"""Training and prediction run image models in channels_last (faster on CPU), and must neither break a model that
cannot take it nor hand any model back in another layout."""

from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.training import loop as training
from pipeline.training.loop import TrainSettings, predict_logits, train
from tests.networks import ZooNet


class ViewAfterConv(nn.Module):
    """`.view()` on a convolution's output: legal in the default layout, an error on a channels_last tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


def _data(n: int = 64):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _all_contiguous(model: nn.Module) -> bool:
    return all(p.is_contiguous() for p in model.parameters())


def test_channels_last_training_matches_the_default_layout_and_hands_the_model_back_contiguous(monkeypatch):
    x, y = _data()
    settings = TrainSettings(epochs=2, batch_size=16, lr=0.05, flip=False)
    torch.manual_seed(0)
    a = ZooNet()
    b = ZooNet()
    b.load_state_dict(a.state_dict())
    train(a, x, y, settings, desc="t")
    # the same steps in the default layout: differences are float rounding, not another computation
    monkeypatch.setattr(training, "_layout", lambda model, images: torch.contiguous_format)
    train(b, x, y, settings, desc="t")
    monkeypatch.undo()
    assert _all_contiguous(a)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if pa.is_floating_point():
            assert torch.allclose(pa, pb, atol=1e-4, rtol=1e-3), name
    logits = predict_logits(a, x)
    assert _all_contiguous(a) and not a.training
    assert logits.shape == (64, 10)


def test_a_model_that_cannot_take_channels_last_still_trains_and_predicts():
    x, y = _data()
    model = ViewAfterConv()
    summary = train(model, x, y, TrainSettings(epochs=1, batch_size=16, lr=0.05, flip=True), desc="t")
    assert summary["steps"] == 4
    assert _all_contiguous(model)
    assert predict_logits(model, x).shape == (64, 10)


def test_the_layout_is_chosen_per_model():
    x, _ = _data(4)
    assert training._layout(ZooNet(), x) is torch.channels_last
    assert training._layout(ViewAfterConv(), x) is torch.contiguous_format
    assert training._layout(nn.Linear(8, 2), torch.randn(4, 8)) is torch.contiguous_format
