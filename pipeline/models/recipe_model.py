"""The recipe's model as the stages see it: what identifies it in cache keys, and why a stage that needs a PyTorch
module does not run on it (an imported ONNX or TFLite file)."""

from __future__ import annotations

from pipeline.models import sources
from pipeline.recipe.config import Config


def model_key(recipe: Config) -> dict:
    """What identifies the recipe's network in cache keys: its spec (no recipe path) and its code or file hash."""
    spec = {k: v for k, v in recipe.data["model_spec"].items() if k != "recipe"}
    return {"spec": spec, **sources.fingerprint(recipe.data["model_spec"])}


def skip_reason(recipe: Config, stage: str) -> str | None:
    """Why a stage that needs a PyTorch model does not run, or None when it can."""
    spec = recipe.data["model_spec"]
    if sources.is_pytorch(spec):
        return None
    enters = "to_onnx (imported, then converted to TFLite)" if spec["source"] == "onnx" else "to_tflite (imported)"
    return f"model.source = '{spec['source']}': {stage} needs a PyTorch model; the file enters at {enters}"
