"""Save and reload models as plain state_dicts plus metadata (never pickled code: weights_only loading)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from pipeline.artifact import Artifact, atomic_write_bytes
from pipeline.errors import UserError
from pipeline.models import build
from pipeline.models.reshape import fit_to_state_dict


def save_state_dict(model: nn.Module, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_state_dict(model: nn.Module, path: Path, pruned: bool = False) -> nn.Module:
    """Load a state_dict file into `model`; a file of the wrong shape or kind gives one clear line.

    With `pruned`, the model's layers are first narrowed to the saved shapes (see pipeline/models/reshape.py).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad files
        raise UserError(f"{path}: cannot be read as a weights-only state_dict ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if pruned:
        fit_to_state_dict(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise UserError(f"{path}: does not fit the recipe's architecture: {first[:200]}") from None
    return model.eval()


def load_model(artifact: Artifact) -> nn.Module:
    """Rebuild the torch model an artifact of format 'torch' describes."""
    model = build(artifact.extra["arch"], **artifact.extra["settings"])
    return load_state_dict(model, Path(artifact.path), pruned=bool(artifact.extra.get("pruned")))
