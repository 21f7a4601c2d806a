"""Progress bars: tqdm on a terminal, nothing when output is captured (CI logs stay readable)."""

from __future__ import annotations

import os

from tqdm import tqdm

from pipeline.core.log import console


def progress(total: int, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on the console (stderr, also during a run); disabled when that is not a terminal or
    PIPELINE_NO_PROGRESS is set."""
    stream = console()
    disable = not stream.isatty() or bool(os.environ.get("PIPELINE_NO_PROGRESS"))
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True, file=stream)
