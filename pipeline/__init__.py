"""Phone pipeline: recipe + target -> stages -> artifacts -> runtimes/devices -> reports -> release.

Importing this package is cheap and needs only the standard library, so `python3 -m pipeline.bootstrap` can run
before the virtual environment exists.
"""

__version__ = "0.1.0"
