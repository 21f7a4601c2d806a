"""The Android demo app's commands: build the hand-made APK, copy a release bundle into the app's assets.

    python -m pipeline.apk build --out build/android/phone-pipeline-demo.apk [--bundle DIR]   # make apk
    python -m pipeline.apk copy-bundle DIR                                                    # make android-demo
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pipeline.android import sources
from pipeline.errors import UserError

BUNDLE_SCHEMA = "phone-pipeline/bundle/1"
DEFAULT_APK = Path("build/android/phone-pipeline-demo.apk")


def copy_bundle(bundle: Path, dest: Path = sources.BUNDLE_ASSETS) -> Path:
    """Replace `dest` (the app's assets/bundle/) with a copy of the release bundle directory `bundle`."""
    metadata = bundle / "metadata.json"
    if not metadata.is_file():
        raise UserError(f"copy-bundle: {bundle} has no metadata.json; pass a release bundle directory")
    try:
        schema = json.loads(metadata.read_text()).get("schema")
    except (ValueError, AttributeError) as exc:
        raise UserError(f"copy-bundle: {metadata} is not a JSON object: {exc}") from None
    if schema != BUNDLE_SCHEMA:
        raise UserError(f"copy-bundle: {metadata}: schema is {schema!r}, the app reads {BUNDLE_SCHEMA!r}")
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle, staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.apk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and verify the signed APK (runtime glue left out)")
    build.add_argument("--out", type=Path, default=DEFAULT_APK)
    build.add_argument("--bundle", type=Path, help="release bundle dir to ship as assets/bundle/")
    copy = sub.add_parser("copy-bundle", help="copy a release bundle into android_demo's assets")
    copy.add_argument("bundle", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from pipeline.android.apk_build import build_apk

            print(build_apk(args.out, bundle=args.bundle).summary())
        else:
            print(f"copy-bundle: {copy_bundle(args.bundle)} now holds {args.bundle}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
