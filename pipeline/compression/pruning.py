"""Structured pruning with Torch-Pruning's dependency graph: channels are physically removed, and residual adds,
depthwise/grouped convolutions, concatenation and squeeze-excitation stay consistent because DepGraph prunes every
coupled layer together.

Example::

    >>> import torch
    >>> from pipeline.models import build
    >>> m = build("mobilenet_v2_small")
    >>> pruned, rep = prune(m, torch.zeros(1, 1, 28, 28), PruneSettings(ratio=0.5, importance="l1"))
    >>> rep["after"]["macs"] < rep["before"]["macs"]
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from pipeline.artifacts.model_io import as_list, flat_outputs
from pipeline.core.errors import one_line
from pipeline.training.loop import first_output, task_loss

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers whose widths pruning changes

# The pruning ratio the MAC-target mode can reach at most, and how finely it walks towards it.
MAX_RATIO = 0.9
MAC_MODE_STEPS = 36


@dataclass(frozen=True)
class PruneSettings:
    ratio: float = 0.0  # channel ratio to remove; 0 means: use macs_factor
    macs_factor: float = 2.0  # prune until MACs are this many times fewer
    importance: str = "l2"  # l1 | l2 | taylor | bn_scale
    global_pruning: bool = False
    round_to: int = 8  # keep widths a multiple of this (SIMD-friendly)
    ignore: tuple[str, ...] = ("classifier",)  # module names never pruned (their outputs stay)
    iterative_steps: int = 1  # ratio mode: reach the ratio in this many steps


IMPORTANCES = ("l1", "l2", "taylor", "bn_scale")  # the names importance() takes; recipes choose among them


def importance(name: str) -> tp.importance.Importance:
    """The importance criterion: a callable from a dependency group to per-channel scores."""
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise ValueError(f"unknown importance {name!r}: use l1, l2, taylor or bn_scale")


def count(model: nn.Module, example: torch.Tensor) -> dict:
    """MACs (every convolution and linear layer, subclasses included) and parameters of `model` on `example`."""
    # Torch-Pruning's counter matches exact layer types and skips subclasses (EfficientNet-Lite's padded conv).
    from pipeline.compression.macs import count_macs

    return count_macs(model, example)


def layer_widths(model: nn.Module) -> dict[str, dict]:
    """Per prunable layer: output channels (or features) and parameter count."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = {"out": m.out_channels, "params": sum(p.numel() for p in m.parameters())}
        elif isinstance(m, nn.Linear):
            out[name] = {"out": m.out_features, "params": sum(p.numel() for p in m.parameters())}
    return out


def _ignored(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no module named {missing[0]!r} to keep (known: {', '.join(list(modules)[1:8])}, ...)")
    return [modules[n] for n in names]


def _taylor_grads(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None) -> None:
    if batches is None:
        raise ValueError("taylor importance needs labelled batches for gradients")
    model.zero_grad()
    for x, y in batches:
        task_loss(first_output(model, as_list(x)), y).backward()


def _traced(example: torch.Tensor | list[torch.Tensor]):
    """The example as Torch-Pruning takes it: the tensor itself, or a tuple of the inputs (called as model(*x))."""
    inputs = as_list(example)
    return inputs[0] if len(inputs) == 1 else tuple(inputs)


def _output_shapes(model: nn.Module, example: torch.Tensor | list[torch.Tensor]) -> list[tuple[int, ...]]:
    with torch.no_grad():
        return [tuple(o.shape) for o in flat_outputs(model(*as_list(example)))[1]]


def output_layers(model: nn.Module, example: torch.Tensor | list[torch.Tensor]) -> list[str]:
    """The convolution and linear layers whose outputs reach a model output through operations without weights:
    their widths are the outputs' sizes (class count, box coordinates, embedding width), so they are never pruned.
    Found on the autograd graph: from each output back to the first weighted layer on every path."""
    modules = {m: n for n, m in model.named_modules() if isinstance(m, WEIGHTED) and n}
    made_by: dict[object, str] = {}

    def record(module, args, output) -> None:
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            made_by[output.grad_fn] = modules[module]

    hooks = [m.register_forward_hook(record) for m in modules]
    was_training = model.training
    try:
        with torch.enable_grad():
            outs = flat_outputs(model.eval()(*[t.detach().requires_grad_(t.is_floating_point())
                                               for t in as_list(example)]))[1]
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    found: list[str] = []
    todo, seen = [o.grad_fn for o in outs if o.grad_fn is not None], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in made_by:
            if made_by[fn] not in found:
                found.append(made_by[fn])
            continue  # the layer's own inputs do not set the output's width
        todo += [nxt for nxt, _ in fn.next_functions]
    order = list(modules.values())
    return sorted(found, key=order.index)


class PruneError(Exception):
    """Nothing could be pruned: names the structure Torch-Pruning could not follow."""


def _group_layers(group, names: dict[nn.Module, str]) -> list[str]:
    """The named layers a dependency group touches, in order, without repeats."""
    out: list[str] = []
    for dep, _ in group:
        name = names.get(dep.target.module)
        if name and name not in out:
            out.append(name)
    return out


class _GuardedImportance(tp.importance.Importance):
    """An importance that turns a failure on one group into 'leave this group unpruned' (Torch-Pruning skips a
    group whose importance is None) and records which layers were left and why."""

    def __init__(self, inner: tp.importance.Importance, names: dict[nn.Module, str], failures: list[dict]):
        self.inner, self.names, self.failures = inner, names, failures

    def __call__(self, group, **kwargs):
        try:
            return self.inner(group, **kwargs)
        except Exception as exc:  # Torch-Pruning's index maps break on structures its graph does not follow
            layers = _group_layers(group, self.names)
            if not any(f["layers"] == layers for f in self.failures):
                self.failures.append({"layers": layers, "reason": f"importance failed: {one_line(exc)}"})
            return None


def _failing_module(model: nn.Module, x: torch.Tensor | list[torch.Tensor]) -> tuple[str | None, str]:
    """(name of the innermost module whose forward raised, the error) or (None, '') when the forward works."""
    stack: list[str] = []

    def enter(name: str):
        return lambda module, args: stack.append(name)  # None: the input is left as it is

    def leave(module, args, output) -> None:  # returning anything else would replace the output
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_pre_hook(enter(name)))
        hooks.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad():
            model.eval()(*as_list(x))
        return None, ""
    except Exception as exc:  # any layer may fail on the narrowed shapes
        return (stack[-1] if stack else ""), one_line(exc)
    finally:
        for h in hooks:
            h.remove()


def _same_kind(model: nn.Module, culprit: str) -> list[str]:
    """`culprit` and, when it is a custom layer class (not torch.nn's), every other layer of that class: they share
    the structure that broke (MixNet's fixed split sizes), so one retry covers them all."""
    modules = dict(model.named_modules())
    kind = type(modules[culprit])
    if kind.__module__.startswith("torch.nn"):
        return [culprit]
    return [n for n, m in modules.items() if type(m) is kind]


def _groups_touching(model: nn.Module, example: torch.Tensor, culprits: list[str]) -> list[str]:
    """Root layers of every dependency group that changes a layer inside `culprits` (so they keep their widths)."""
    modules = dict(model.named_modules())
    inside = {m for c in culprits for m in modules[c].modules()}
    names = {m: n for n, m in modules.items()}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=_traced(example))
    roots = [n for n, m in modules.items() if m in inside and isinstance(m, WEIGHTED)]
    for group in graph.get_all_groups(root_module_types=WEIGHTED):
        if any(dep.target.module in inside for dep, _ in group):
            root = names.get(group[0].dep.target.module)
            if root and root not in roots:
                roots.append(root)
    return roots


MAX_ATTEMPTS = 8  # each attempt leaves more layers unpruned; a model needing more is not worth pruning this way


def prune(
    model: nn.Module,
    example: torch.Tensor | list[torch.Tensor],
    settings: PruneSettings,
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None,
    check: torch.Tensor | list[torch.Tensor] | None = None,
) -> tuple[nn.Module, dict]:
    """Prune a copy of `model`; returns it with a report of MACs and parameters before/after, total and per layer.

    Structures Torch-Pruning's dependency graph cannot follow do not end the run: a group whose importance or
    pruning fails, or whose pruning breaks the forward pass (checked on `check`, a real batch), is left unpruned
    and listed in the report's ``left_unpruned``. Raises PruneError when nothing at all could be pruned.
    `batches` yields (images, labels) for gradient-based importance (taylor).
    """
    model.eval()
    before, widths_before = count(model, example), layer_widths(model)
    want_shape = _output_shapes(model, example)
    _ignored(model, settings.ignore)  # an unknown name is the user's mistake: KeyError naming it
    keep = list(settings.ignore)
    left: list[dict] = []
    outputs = [n for n in output_layers(model, example) if n not in keep]
    if outputs:
        left.append({"layers": outputs, "reason": "their outputs are the model's outputs (class count, coordinates, "
                                                  "embedding width): their widths stay"})
        keep += outputs
    for _attempt in range(MAX_ATTEMPTS):
        candidate = copy.deepcopy(model)
        failures: list[dict] = []
        done, broken = _prune_steps(candidate, example, settings, batches, keep, failures, before["macs"])
        left_now = [f for f in failures if f not in left]
        if broken is not None:  # a group's pruning itself raised: keep its layers and start again
            left.append(broken)
            keep += [n for n in broken["layers"] if n not in keep]
            continue
        culprit, error = _failing_module(candidate, check if check is not None else example)
        if culprit is None:
            got = _output_shapes(candidate, example)
            if got != want_shape:
                culprit, error = "", (f"output shapes {[list(g) for g in got]} instead of "
                                      f"{[list(w) for w in want_shape]}")
        if culprit is not None:
            if not culprit:  # the model's own forward: nothing narrower than the whole network to blame
                raise PruneError(f"pruning breaks the model's forward pass ({error}) in code outside any layer "
                                 "(reshapes of channel dimensions in forward()?); list the layers involved in "
                                 "prune.ignore, or set prune.enabled = false")
            kind = _same_kind(model, culprit)
            layers = _groups_touching(model, example, kind)
            also = f" (and {len(kind) - 1} more {type(dict(model.named_modules())[culprit]).__name__})" \
                if len(kind) > 1 else ""
            left.append({"layers": layers, "reason": f"forward fails in {culprit!r}{also} after pruning: {error}"})
            keep += [n for n in layers if n not in keep]
            continue
        left += left_now
        break
    else:
        raise PruneError(f"still failing after leaving {len(keep)} layers unpruned ({left[-1]['reason']}); "
                         "set prune.enabled = false for this model")
    candidate.zero_grad(set_to_none=True)
    after, widths_after = count(candidate, example), layer_widths(candidate)
    if after["macs"] >= before["macs"] and left:
        first = left[0]
        raise PruneError(f"nothing could be pruned: {first['reason']} (layers {', '.join(first['layers'][:4])}); "
                         "add the layers of that structure to prune.ignore, or set prune.enabled = false")
    layers = [  # a list keeps the model's order (JSON objects get their keys sorted)
        {"name": name, "out_before": w["out"], "out_after": widths_after[name]["out"], "params_before": w["params"],
         "params_after": widths_after[name]["params"]}
        for name, w in widths_before.items() if name in widths_after
    ]
    by_ratio = settings.ratio > 0
    report = {
        "before": before,
        "after": after,
        "macs_reduction": before["macs"] / max(after["macs"], 1),
        "params_reduction": before["params"] / max(after["params"], 1),
        "steps": done,
        "target": {"ratio": settings.ratio} if by_ratio else {"macs_factor": settings.macs_factor},
        "reached": by_ratio or after["macs"] <= before["macs"] / settings.macs_factor,
        "layers": layers,
        "left_unpruned": left,
        "forward_check": "passed" if check is not None else "passed (example input)",
    }
    return candidate, report


def _prune_steps(model: nn.Module, example: torch.Tensor, settings: PruneSettings, batches, keep: list[str],
                 failures: list[dict], macs_before: int) -> tuple[int, dict | None]:
    """Run the pruning steps on `model` in place: (steps done, the group whose pruning raised, if one did)."""
    names = {m: n for n, m in model.named_modules()}
    by_ratio = settings.ratio > 0
    steps = settings.iterative_steps if by_ratio else MAC_MODE_STEPS
    try:
        pruner = tp.pruner.MetaPruner(
            model, _traced(example), importance=_GuardedImportance(importance(settings.importance), names, failures),
            global_pruning=settings.global_pruning, pruning_ratio=settings.ratio if by_ratio else MAX_RATIO,
            iterative_steps=steps, round_to=settings.round_to or None, ignored_layers=_ignored(model, tuple(keep)),
        )
    except Exception as exc:  # tracing the dependency graph failed: custom ops, dynamic control flow
        raise PruneError(f"Torch-Pruning cannot trace this model's dependency graph ({one_line(exc)}); set "
                         "prune.enabled = false, or list the offending layers in prune.ignore") from None
    target_macs = macs_before / settings.macs_factor
    done = 0
    for _ in range(steps):
        if not by_ratio and count(model, example)["macs"] <= target_macs:
            break
        if settings.importance == "taylor":
            _taylor_grads(model, batches() if batches else None)
        for group in pruner.step(interactive=True):
            try:
                group.prune()
            except Exception as exc:  # the model may be half-changed now: the caller starts again without it
                return done, {"layers": _group_layers(group, names), "reason": f"pruning failed: {one_line(exc)}"}
        done += 1
    return done, None
