"""How good a model's outputs are: the user's task metric (metrics/task.py) and numeric fidelity per output against
a reference (metrics/fidelity.py)."""
