"""Low-rank factorisation of convolutions and linear layers: fewer MACs from one big layer made of two or three thin
ones.

- A k x k convolution (k > 1, not grouped) becomes Tucker-2 on its channel modes (tensorly's `partial_tucker`): a
  1x1 convolution down to r_in channels, the k x k core from r_in to r_out, and a 1x1 convolution up to the output.
- A 1x1 convolution or a linear layer becomes a truncated SVD (`torch.linalg.svd`): down to r, then up.
- Depthwise and grouped convolutions are left alone (nothing to factor across channels), and so is any layer whose
  factorised form would not save at least `min_saving` of its MACs: on phones three thin kernels are often slower
  than one wide one, so a small gain is not worth the risk.

The rank of each mode is the smallest that keeps `energy` of the squared singular values of that unfolding; with a
`macs_factor` instead, one energy for all layers is found by bisection so the whole model has that many fewer MACs.

A factorised layer keeps its name: `features.3.conv.0` becomes a Sequential whose children are `0`, `1` (and `2`),
so pruning's ignore lists, the debugger and the fallback still find it. `rebuild` gives a freshly built model the
same structure from the plan recorded in the artifact, and the weights then load weights-only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from pipeline.artifacts.model_io import Inputs, as_list
from pipeline.compression.macs import count_macs


@dataclass(frozen=True)
class LowRankSettings:
    energy: float = 0.9  # kept fraction of squared singular values per mode (used when macs_factor is 0)
    macs_factor: float = 0.0  # > 1: choose one energy so that the model has this many times fewer MACs
    min_saving: float = 0.1  # a layer is factorised only if that removes at least this share of its MACs
    min_macs: int = 100_000  # layers smaller than this (MACs per image) are not worth touching
    ignore: tuple[str, ...] = ("classifier",)


class LowRankError(ValueError):
    """A setting names no layer, or nothing in the model can be factorised."""


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d) and not isinstance(module, nn.ConvTranspose2d):
        if module.groups != 1:
            return None
        return "svd" if tuple(module.kernel_size) == (1, 1) else "tucker2"
    if isinstance(module, nn.Linear):
        return "svd"
    return None


def _ignored(name: str, ignore: tuple[str, ...]) -> bool:
    return any(name == i or name.startswith(i + ".") for i in ignore)


def _shapes(model: nn.Module, example: Inputs) -> dict[str, tuple[int, int]]:
    """name -> (input positions, output positions) per call on one image: H*W for convolutions, tokens for linear."""
    seen: dict[str, tuple[int, int]] = {}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            if isinstance(module, nn.Conv2d):
                seen[name] = (x.shape[-2] * x.shape[-1], output.shape[-2] * output.shape[-1])
            else:
                seen[name] = (x.numel() // x.shape[-1] // x.shape[0], output.numel() // output.shape[-1] // x.shape[0])
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if _kind(m)]
    try:
        with torch.no_grad():
            model.eval()(*[t[:1] for t in as_list(example)])
    finally:
        for h in handles:
            h.remove()
    return seen


def _rank_for(values: np.ndarray, energy: float) -> int:
    """Smallest r whose leading singular values keep `energy` of the total squared sum."""
    power = np.cumsum(values.astype(np.float64) ** 2)
    if power[-1] <= 0:
        return 1
    return int(min(len(values), np.searchsorted(power / power[-1], min(energy, 1.0) - 1e-12) + 1))


@dataclass
class _Layer:
    name: str
    kind: str
    weight: np.ndarray  # (out, in, kh, kw) or (out, in)
    positions: tuple[int, int]
    spectra: tuple[np.ndarray, ...]  # singular values: (mode 0, mode 1) for tucker2, (matrix,) for svd

    @property
    def out_in(self) -> tuple[int, int]:
        return self.weight.shape[0], self.weight.shape[1]

    @property
    def taps(self) -> int:
        return int(math.prod(self.weight.shape[2:])) if self.weight.ndim == 4 else 1

    def macs(self) -> int:
        out_c, in_c = self.out_in
        return self.positions[1] * out_c * in_c * self.taps

    def ranks(self, energy: float) -> tuple[int, ...]:
        return tuple(_rank_for(s, energy) for s in self.spectra)

    def macs_at(self, ranks: tuple[int, ...]) -> int:
        out_c, in_c = self.out_in
        pin, pout = self.positions
        if self.kind == "tucker2":
            r_out, r_in = ranks
            return pin * in_c * r_in + pout * (r_in * r_out * self.taps + r_out * out_c)
        (r,) = ranks
        return pout * (in_c * r + r * out_c)  # a strided 1x1 convolution keeps its stride in the first factor


def _candidates(model: nn.Module, example: Inputs, s: LowRankSettings) -> tuple[list[_Layer], list[dict]]:
    positions = _shapes(model, example)
    layers, skipped = [], []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            if not _ignored(name, s.ignore):
                skipped.append({"layer": name, "reason": "grouped or depthwise convolution"})
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv3d)):
            if not _ignored(name, s.ignore):
                skipped.append({"layer": name, "reason": f"{type(module).__name__}: only 2-D convolutions and linear "
                                                         "layers are factorised"})
            continue
        kind = _kind(module)
        if kind is None or name not in positions:
            continue
        if _ignored(name, s.ignore):
            skipped.append({"layer": name, "reason": "decompose.ignore"})
            continue
        w = module.weight.detach().double().numpy()
        if kind == "tucker2":
            spectra = (np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False),
                       np.linalg.svd(np.moveaxis(w, 1, 0).reshape(w.shape[1], -1), compute_uv=False))
        else:
            spectra = (np.linalg.svd(w.reshape(w.shape[0], w.shape[1]), compute_uv=False),)
        layer = _Layer(name, kind, w, positions[name], spectra)
        if layer.macs() < s.min_macs:
            skipped.append({"layer": name, "reason": f"{layer.macs():,} MACs < decompose.min_macs"})
            continue
        layers.append(layer)
    return layers, skipped


def _choose(layers: list[_Layer], energy: float, min_saving: float) -> dict[str, tuple[int, ...]]:
    """Ranks per layer at this energy, for the layers where factorising saves enough."""
    chosen = {}
    for layer in layers:
        ranks = layer.ranks(energy)
        if layer.macs_at(ranks) <= (1.0 - min_saving) * layer.macs():
            chosen[layer.name] = ranks
    return chosen


def _energy_for_factor(layers: list[_Layer], s: LowRankSettings, total: int) -> float:
    """The highest energy (most accurate) at which the whole model's MACs fall by `macs_factor`."""
    def macs(e: float) -> int:
        chosen = _choose(layers, e, s.min_saving)
        return total - sum(x.macs() - x.macs_at(chosen[x.name]) for x in layers if x.name in chosen)

    lo, hi = 0.05, 0.99999
    if macs(lo) * s.macs_factor > total:
        return lo  # the factor cannot be reached by factorisation alone; the report says what was reached
    for _ in range(40):
        mid = (lo + hi) / 2
        if macs(mid) * s.macs_factor <= total:
            lo = mid
        else:
            hi = mid
    return lo


def _conv(template: nn.Conv2d, in_c: int, out_c: int, keep_geometry: bool, weight: torch.Tensor | None,
          bias: torch.Tensor | None) -> nn.Conv2d:
    """A convolution of template's class: its kernel, stride and padding if `keep_geometry`, else a plain 1x1."""
    if keep_geometry:
        conv = copy.deepcopy(template)
        conv.in_channels, conv.out_channels = in_c, out_c
        conv.weight = nn.Parameter(weight if weight is not None else torch.empty(out_c, in_c, *template.kernel_size))
        conv.bias = None if bias is None else nn.Parameter(bias)
        return conv
    conv = nn.Conv2d(in_c, out_c, 1, bias=bias is not None)
    if weight is not None:
        conv.weight = nn.Parameter(weight.reshape(out_c, in_c, 1, 1))
    if bias is not None:
        conv.bias = nn.Parameter(bias)
    return conv


def _factorised(module: nn.Module, kind: str, ranks: tuple[int, ...], factors: tuple | None) -> nn.Sequential:
    """The replacement of `module`; with `factors` None its weights are empty (to be loaded from a state_dict)."""
    f = factors or (None,) * 4
    bias = None if module.bias is None else (module.bias.detach().clone() if factors else torch.empty_like(module.bias))
    if isinstance(module, nn.Linear):
        (r,) = ranks
        down, up = nn.Linear(module.in_features, r, bias=False), nn.Linear(r, module.out_features,
                                                                           bias=module.bias is not None)
        if factors:
            down.weight, up.weight = nn.Parameter(f[0]), nn.Parameter(f[1])
            if bias is not None:
                up.bias = nn.Parameter(bias)
        return nn.Sequential(down, up)
    if kind == "svd":
        (r,) = ranks
        down = _conv(module, module.in_channels, r, True, None if f[0] is None else f[0].reshape(r, -1, 1, 1), None)
        return nn.Sequential(down, _conv(module, r, module.out_channels, False, f[1], bias))
    r_out, r_in = ranks
    first = _conv(module, module.in_channels, r_in, False, f[0], None)
    core = _conv(module, r_in, r_out, True, f[1], None)
    return nn.Sequential(first, core, _conv(module, r_out, module.out_channels, False, f[2], bias))


def _factors(layer: _Layer, ranks: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    w = layer.weight
    if layer.kind == "tucker2":
        from tensorly.decomposition import partial_tucker

        r_out, r_in = ranks
        (core, (u_out, u_in)), _ = partial_tucker(w, rank=[r_out, r_in], modes=[0, 1], init="svd", n_iter_max=50)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)).float() for a in (u_in.T, core, u_out))
    (r,) = ranks
    u, s, vt = torch.linalg.svd(torch.from_numpy(w.reshape(w.shape[0], w.shape[1])), full_matrices=False)
    root = torch.sqrt(s[:r])
    return ((vt[:r] * root[:, None]).float().contiguous(), (u[:, :r] * root[None, :]).float().contiguous())


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def decompose(model: nn.Module, example: Inputs, s: LowRankSettings) -> tuple[nn.Module, dict]:
    """Factorise `model` in place; returns it and the report (plan, per-layer ranks, MACs and params)."""
    names = {n for n, _ in model.named_modules()}
    for entry in s.ignore:
        if not any(n == entry or n.startswith(entry + ".") for n in names):
            raise KeyError(entry)
    before = count_macs(model, [t[:1] for t in as_list(example)])
    layers, skipped = _candidates(model, example, s)
    if not layers:
        raise LowRankError("no convolution or linear layer is large enough to factorise (decompose.min_macs, "
                           "decompose.ignore); set decompose.enabled = false")
    energy = _energy_for_factor(layers, s, before["macs"]) if s.macs_factor > 1 else s.energy
    chosen = _choose(layers, energy, s.min_saving)
    rows = []
    for layer in layers:
        if layer.name not in chosen:
            skipped.append({"layer": layer.name, "reason": f"factorising at energy {energy:.3f} would save less than "
                            f"{s.min_saving:.0%} of its MACs"})
            continue
        ranks = chosen[layer.name]
        module = model.get_submodule(layer.name)
        params_before = sum(p.numel() for p in module.parameters())
        new = _factorised(module, layer.kind, ranks, _factors(layer, ranks))
        _replace(model, layer.name, new)
        out_c, in_c = layer.out_in
        rows.append({"layer": layer.name, "kind": layer.kind, "shape": [out_c, in_c, *layer.weight.shape[2:]],
                     "ranks": list(ranks), "macs_before": layer.macs(), "macs_after": layer.macs_at(ranks),
                     "params_before": params_before, "params_after": sum(p.numel() for p in new.parameters())})
    if not rows:
        raise LowRankError(f"at energy {energy:.3f} no layer saves {s.min_saving:.0%} of its MACs by factorising; "
                           "lower decompose.energy or decompose.min_saving, or set decompose.enabled = false")
    after = count_macs(model, [t[:1] for t in as_list(example)])
    plan = {r["layer"]: {"kind": r["kind"], "ranks": r["ranks"]} for r in rows}
    return model, {"energy": energy, "plan": plan, "layers": rows, "left_as_is": skipped,
                   "before": before, "after": after, "macs_reduction": before["macs"] / max(1, after["macs"])}


def rebuild(model: nn.Module, plan: dict) -> nn.Module:
    """Give a freshly built model the factorised structure of `plan` (empty weights, to be loaded)."""
    for name, entry in plan.items():
        module = model.get_submodule(name)
        _replace(model, name, _factorised(module, entry["kind"], tuple(entry["ranks"]), None))
    return model
