"""The run's validation report as it goes into a bundle: the same document without the clock or absolute paths.

Every run rewrites report.json with a new `created` time and the cache's absolute paths, so copying it verbatim would
make each release differ. The bundle keeps every measurement and drops only these: `created` becomes null, paths
become the bundle file (for shipped artifacts) or the bare file name, and `bundle_note` says so.
"""

from __future__ import annotations

import copy
from pathlib import PurePath

from pipeline.report import run_report

NOTE = ("Copied from the run's report.json for the release bundle: 'created' is null and paths are bundle-relative "
        "or bare file names, so that the same run always gives the same bundle. All measurements are unchanged.")


def for_bundle(report: dict, shipped_files: dict[str, str]) -> dict:
    """`report` (a report.json document) with the clock and absolute paths taken out."""
    rep = copy.deepcopy(report)
    rep["created"] = None
    rep["bundle_note"] = NOTE
    for key in ("recipe", "target"):
        if rep.get(key, {}).get("path"):
            rep[key]["path"] = PurePath(rep[key]["path"]).name
    for row in rep["artifacts"]:
        row["path"] = shipped_files.get(row["name"], PurePath(row["path"]).name)
    return rep


def markdown(bundle_report: dict) -> str:
    """report.md for the bundle, rendered by the pipeline's own report code."""
    return run_report.markdown({**bundle_report, "created": "(left out of release bundles)"})
