"""Low-rank factorisation (pipeline/compression/lowrank.py): exact at full rank, fewer MACs at lower rank, and a
factorised model rebuilt from its plan loads its own weights."""

import pytest
import torch
import torch.nn as nn

from pipeline.compression.lowrank import LowRankError, LowRankSettings, decompose, rebuild
from pipeline.compression.macs import count_macs
from tests.networks import assert_outputs_differ_per_input, varied_inputs


class ConvNet(nn.Module):
    """A 3x3 convolution (Tucker-2), a 1x1 convolution and a linear layer (SVD), a depthwise one (left alone)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.body = nn.Conv2d(32, 48, 3, padding=1, bias=False)
        self.depthwise = nn.Conv2d(48, 48, 3, padding=1, groups=48)
        self.point = nn.Conv2d(48, 64, 1)
        self.hidden = nn.Linear(64, 96)
        self.classifier = nn.Linear(96, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.body(x))
        x = torch.relu(self.point(self.depthwise(x)))
        return self.classifier(torch.relu(self.hidden(x.mean((2, 3)))))


def _model_and_input():
    torch.manual_seed(0)
    return ConvNet().eval(), varied_inputs(4, (3, 16, 16))


def test_full_rank_factorisation_keeps_outputs_of_convolutions_and_linear_layers():
    model, x = _model_and_input()
    with torch.no_grad():
        before = model(x)
    assert_outputs_differ_per_input(before.numpy(), classes=False)  # random: one top-1 class for all four
    # energy 1.0 keeps every singular value; a negative min_saving lets layers through that full rank makes larger
    s = LowRankSettings(energy=1.0, min_saving=-10.0, min_macs=0, ignore=("classifier",))
    factored, report = decompose(model, x, s)
    kinds = {row["layer"]: row["kind"] for row in report["layers"]}
    assert kinds == {"stem": "tucker2", "body": "tucker2", "point": "svd", "hidden": "svd"}
    assert {e["layer"] for e in report["left_as_is"]} >= {"depthwise", "classifier"}
    assert isinstance(factored.body, nn.Sequential) and len(factored.body) == 3
    with torch.no_grad():
        after = factored(x)
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4), (before - after).abs().max()


def test_lower_energy_reduces_macs_and_the_report_counts_them_like_the_counter():
    model, x = _model_and_input()
    s = LowRankSettings(energy=0.5, min_saving=0.1, min_macs=0, ignore=("classifier",))
    factored, report = decompose(model, x, s)
    assert report["after"]["macs"] < report["before"]["macs"]
    assert report["after"]["macs"] == count_macs(factored, x[:1])["macs"]
    saved = sum(r["macs_before"] - r["macs_after"] for r in report["layers"])
    assert report["after"]["macs"] == report["before"]["macs"] - saved
    for row in report["layers"]:
        assert row["macs_after"] <= (1 - s.min_saving) * row["macs_before"]


def test_a_macs_factor_picks_one_energy_that_reaches_it():
    model, x = _model_and_input()
    factored, report = decompose(model, x, LowRankSettings(macs_factor=1.5, min_macs=0, min_saving=0.0))
    assert report["before"]["macs"] / report["after"]["macs"] >= 1.5
    assert 0 < report["energy"] < 1


def test_a_plan_rebuilds_the_structure_so_the_weights_load_weights_only():
    model, x = _model_and_input()
    factored, report = decompose(model, x, LowRankSettings(energy=0.6, min_macs=0))
    fresh = rebuild(ConvNet(), report["plan"])
    fresh.load_state_dict(factored.state_dict())  # strict: same names and shapes
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), factored(x))


def test_nothing_to_factorise_is_a_clear_error_and_unknown_ignore_entries_are_named():
    model, x = _model_and_input()
    with pytest.raises(LowRankError, match="min_macs"):
        decompose(model, x, LowRankSettings(min_macs=10**12))
    with pytest.raises(KeyError, match="nope"):
        decompose(model, x, LowRankSettings(ignore=("nope",)))
