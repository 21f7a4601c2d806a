"""Progress bars: tqdm on a terminal, nothing when output is captured (CI logs stay readable)."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress(total: int, desc: str, unit: str = "it") -> tqdm:
    """A progress bar on stderr; disabled when stderr is not a terminal or PIPELINE_NO_PROGRESS is set."""
    disable = not sys.stderr.isatty() or bool(os.environ.get("PIPELINE_NO_PROGRESS"))
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True)
