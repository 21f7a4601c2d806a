"""Measurements behind design decisions, runnable again: `python -m pipeline.evidence.<name>`."""
