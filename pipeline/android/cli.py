"""The Android demo app's commands: build the hand-made APK, copy a release bundle into the app's assets.

    python -m pipeline.android build --out build/android/phone-pipeline-demo.apk [--bundle DIR]   # make apk
    python -m pipeline.android copy-bundle DIR                                                    # make android-demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.android import sources
from pipeline.core.errors import UserError, message_line
from pipeline.release.bundle_copy import copy_verified

DEFAULT_APK = Path("build/android/phone-pipeline-demo.apk")


def copy_bundle(bundle: Path, dest: Path = sources.BUNDLE_ASSETS) -> Path:
    """Replace `dest` (the app's assets/bundle/) with a checked copy of the release bundle `bundle` (folder or
    .tar.gz); links are never followed and a bundle that fails its checks leaves `dest` as it was."""
    return copy_verified(bundle, dest, "copy-bundle")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.android", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and verify the signed APK (runtime glue left out)")
    build.add_argument("--out", type=Path, default=DEFAULT_APK)
    build.add_argument("--bundle", type=Path, help="release bundle dir to ship as assets/bundle/")
    copy = sub.add_parser("copy-bundle", help="copy a release bundle into android_demo's assets")
    copy.add_argument("bundle", type=Path, help="release bundle directory or .tar.gz")
    copy.add_argument("--dest", type=Path, default=sources.BUNDLE_ASSETS, help="default: the app's assets/bundle/")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from pipeline.android.apk_build import build_apk

            print(build_apk(args.out, bundle=args.bundle).summary())
        else:
            print(f"copy-bundle: {copy_bundle(args.bundle, args.dest)} now holds {args.bundle}")
    except UserError as exc:
        print(message_line(exc), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
