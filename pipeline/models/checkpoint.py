"""Save and reload models as plain state_dicts plus metadata (never pickled code: weights_only loading)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from pipeline.artifacts.artifact import Artifact, atomic_write_bytes
from pipeline.artifacts.model_io import as_list, flat_outputs
from pipeline.core.errors import UserError, shown
from pipeline.models import sources
from pipeline.models.reshape import fit_to_state_dict

CHECKPOINT_KEYS = ("state_dict", "model")  # training scripts' checkpoint dicts keep the weights under one of these


def save_state_dict(model: nn.Module, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _read_error(path: Path, exc: Exception) -> UserError:
    """One line for a file torch cannot load weights-only: pickled code, or not a torch.save file at all."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return UserError(f"{path}: holds pickled Python objects ({found.group(1)}) that weights-only loading refuses; "
                         "save the weights with torch.save(model.state_dict(), path) and point weights.path at it")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marker = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), None)
    if marker is not None:  # torch's advice about weights_only=False precedes the actual reason
        after = lines[marker].split("WeightsUnpickler error:", 1)[-1].strip()
        detail = after or (lines[marker + 1] if marker + 1 < len(lines) else "")
    else:
        detail = lines[0] if lines else type(exc).__name__
    return UserError(f"{path}: not a PyTorch state_dict file written by torch.save ({detail[:120]})")


def _fit_error(path: Path, model: nn.Module, state: dict) -> UserError:
    """Name what differs between the file and the recipe's architecture, briefly."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    shapes = [f"{k} {got[k]} vs {want[k]}" for k in want if k in got and got[k] != want[k]]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)):
        if items:
            parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:2])})")
    return UserError(f"{path}: does not fit the recipe's architecture: {'; '.join(parts) or 'not a state_dict'}; "
                     "check model.arch and model.settings")


def load_state_dict(model: nn.Module, path: Path, pruned: bool = False) -> nn.Module:
    """Load a state_dict file into `model`; a file of the wrong shape or kind gives one clear line.

    With `pruned`, the model's layers are first narrowed to the saved shapes (see pipeline/models/reshape.py).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad files
        raise _read_error(path, exc) from None
    if isinstance(state, dict):
        key = next((k for k in CHECKPOINT_KEYS if isinstance(state.get(k), dict)), None)
        state = state[key] if key else state
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a state_dict; "
                        "save it with torch.save(model.state_dict(), path)")
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"{shown(path)}: tensor '{shown(name)}' holds NaN or infinite values; these weights "
                            "cannot give a usable model (check the training run that saved them)")
    if pruned:
        fit_to_state_dict(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise _fit_error(path, model, state) from None
    return model.eval()


def load_model(artifact: Artifact) -> nn.Module:
    """Rebuild the torch model an artifact of format 'torch' describes (from its recorded model spec, so a fresh
    process can do it whatever the source: registry, the user's file, a package)."""
    model = sources.build(artifact.extra["model"])
    if artifact.extra.get("decomposed"):
        from pipeline.compression.lowrank import rebuild

        rebuild(model, artifact.extra["decomposed"])
    return load_state_dict(model, Path(artifact.path), pruned=bool(artifact.extra.get("pruned")))


def check_rebuild(model: torch.nn.Module, art, x: torch.Tensor | list[torch.Tensor], what: str,
                  stage: str = "prune") -> None:
    """Later stages and fresh processes rebuild a compressed network from its spec, its recorded structure and its
    state_dict: it must give the same outputs as the module itself, or the architecture keeps widths somewhere we
    cannot see."""
    fix = f"add the layer to {stage}.ignore or set {stage}.enabled = false"
    try:
        rebuilt = load_model(art)
        xs = as_list(x)
        with torch.no_grad():
            got, want = flat_outputs(rebuilt(*xs))[1], flat_outputs(model.eval()(*xs))[1]
        same = all(torch.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(got, want, strict=True))
    except Exception as exc:  # e.g. a layer that computes sizes in __init__ from the unpruned widths
        raise UserError(f"{stage}: {what}: the {stage}d network cannot be rebuilt from its weights "
                        f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}); {fix}") from None
    if not same:
        raise UserError(f"{stage}: {what}: the {stage}d network rebuilt from its weights gives other outputs; {fix} "
                        "(layers that keep fixed widths)")
