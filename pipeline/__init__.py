"""Phone pipeline: recipe + target -> stages -> artifacts -> runtimes/devices -> reports -> release.

Importing this package is cheap and needs only the standard library, so `python3 -m pipeline.bootstrap` can run
before the virtual environment exists. The Python API is reachable from here too, loaded on first use::

    from pipeline import run, search, release, debug, profile
"""

__version__ = "0.1.0"

_API = ("run", "search", "release", "debug", "profile", "Run", "Search", "ArtifactResult", "ImageFolder",
        "PipelineError")


def __getattr__(name: str):
    if name in _API:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
