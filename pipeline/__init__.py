"""Phone pipeline: recipe + target -> stages -> artifacts -> runtimes/devices -> reports -> release.

Importing this package is cheap and needs only the standard library, so `python3 -m pipeline.bootstrap` can run
before the virtual environment exists. The Python API lives in `pipeline.api`; `run` and its result types are also
reachable from here, loaded on first use::

    from pipeline import run
    from pipeline.api import search, release, debug, profile   # these names are the pipeline's own sub-packages
"""

import os

__version__ = "0.1.0"

# ONNX Runtime's Linux wheels (1.32) start a telemetry client on first use: it writes a device id and an event
# database under ~/.cache/Microsoft and a session file in $TMPDIR, and tries to upload. The pipeline works offline and
# writes nowhere but its build dir; the variable is read once per process, before onnxruntime starts, and children
# inherit it. A user who set it keeps their value.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Only names that no sub-package has: `pipeline.search`, `.release`, `.debug` and `.profile` are packages, and an
# attribute of the same name would change meaning once they are imported.
_API = ("run", "Run", "Search", "ArtifactResult", "ImageFolder", "Arrays", "Dataset", "PipelineError")


def __getattr__(name: str):
    if name in _API:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
