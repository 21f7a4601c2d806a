"""Progress bars: tqdm on a terminal, tqdm's auto mode in a notebook (a widget where ipywidgets is installed, plain
lines otherwise), nothing when output is captured (CI logs stay readable)."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

from pipeline.core.log import console


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return type(ip).__name__ == "ZMQInteractiveShell"


def progress(total: int, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on the console (stderr, also during a run), or in a notebook's output; disabled when neither
    is there or PIPELINE_NO_PROGRESS is set."""
    if os.environ.get("PIPELINE_NO_PROGRESS"):
        return tqdm(total=total, disable=True)
    if _in_notebook():
        import warnings

        from tqdm.auto import tqdm as auto

        with warnings.catch_warnings():  # without ipywidgets tqdm.auto falls back to text and says so
            warnings.simplefilter("ignore")
            return auto(total=total, desc=desc, unit=unit, leave=False)
    stream = console()
    return tqdm(total=total, desc=desc, unit=unit, disable=not stream.isatty(), leave=False, dynamic_ncols=True,
                file=stream)
