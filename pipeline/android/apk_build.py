"""Build the demo app into a signed, verified APK by hand: aapt2, javac, dx, zipalign, apksigner.

Everything except the runtime glue is compiled (see `sources`), so the APK starts and shows "runtime not in this
build" for LiteRT and ExecuTorch; a Gradle build with the libraries is what runs models on a phone.

Example::

    report = build_apk(Path("build/android/phone-pipeline-demo.apk"), bundle=Path("build/release/fashion"))
    print(report.summary())
"""

from __future__ import annotations

import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.android import sources
from pipeline.android.toolchain import Toolchain, ensure_toolchain
from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.release.bundle_copy import copy_verified

KEY_ALIAS = "androiddebugkey"
KEY_PASSWORD = "android"  # the well-known Android debug-key password: this key signs test builds only


@dataclass
class ApkReport:
    """What the build produced and what the verification tools said about it."""

    apk: Path
    package: str
    version_name: str
    sdk_version: str
    launchable_activity: str
    signature_schemes: list[str]
    bundle_included: bool
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(self.seconds.values())
        bundle = "with a bundle" if self.bundle_included else "without a bundle"
        return (
            f"apk: {self.apk} ({self.apk.stat().st_size / 1024:.0f} KiB, {bundle}): package {self.package} "
            f"{self.version_name}, minSdk {self.sdk_version}, launches {self.launchable_activity}; "
            f"apksigner verify: {', '.join(self.signature_schemes)}; built in {total:.1f} s"
        )


def build_apk(out: Path, bundle: Path | None = None) -> ApkReport:
    """Build `out`; `bundle` (a release bundle dir or .tar.gz, checked and copied without following links) goes
    into assets/bundle/, else android_demo's own assets."""
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[step] = now - clock
        clock = now

    out = out.resolve()
    work = out.parent / (out.stem + ".work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    assets = _stage_assets(work, bundle)  # checked before any tool runs
    tools = ensure_toolchain()
    lap("toolchain")
    linked = _link_resources(tools, work, assets)
    lap("aapt2")
    classes_dex = _compile_and_dex(tools, work)
    lap("javac+dx")
    unsigned = work / "unaligned.apk"
    shutil.copyfile(linked, unsigned)
    with zipfile.ZipFile(unsigned, "a", compression=zipfile.ZIP_DEFLATED) as apk:
        apk.write(classes_dex, "classes.dex")
    aligned = work / "aligned.apk"
    run([tools.zipalign, "-f", "-p", "4", str(unsigned), str(aligned)], what="apk: zipalign", timeout=120)
    lap("zip+zipalign")
    _sign(tools, aligned, out)
    schemes = _verify(tools, out)
    lap("apksigner")
    badging = _badging(tools, out)
    lap("aapt badging")
    return ApkReport(
        apk=out, package=badging["package"], version_name=badging["versionName"], sdk_version=badging["sdkVersion"],
        launchable_activity=badging["launchable-activity"], signature_schemes=schemes,
        bundle_included=assets is not None and (assets / "bundle" / "metadata.json").is_file(), seconds=seconds,
    )


def _stage_assets(work: Path, bundle: Path | None) -> Path | None:
    if bundle is None:
        return sources.ASSETS if sources.ASSETS.is_dir() else None
    staged = work / "assets"
    copy_verified(bundle, staged / "bundle", "apk")
    return staged


def _staged_manifest(work: Path) -> Path:
    """The source manifest with the package attribute that the Gradle plugin would inject from `namespace`."""
    text = sources.MANIFEST.read_text()
    if "package=" not in text:
        text = text.replace("<manifest ", f'<manifest package="{sources.PACKAGE}" ', 1)
    staged = work / "AndroidManifest.xml"
    staged.write_text(text)
    return staged


def _link_resources(tools: Toolchain, work: Path, assets: Path | None) -> Path:
    compiled = work / "res.zip"
    run([tools.aapt2, "compile", "--dir", str(sources.RES), "-o", str(compiled)], what="apk: aapt2 compile",
        timeout=300)
    linked = work / "linked.apk"
    cmd = [
        tools.aapt2, "link", "-o", str(linked), "-I", str(tools.android_jar),
        "--manifest", str(_staged_manifest(work)), "--java", str(work / "gen"),
        "--min-sdk-version", str(sources.SDK_LEVEL), "--target-sdk-version", str(sources.SDK_LEVEL),
        "--version-code", str(sources.VERSION_CODE), "--version-name", sources.VERSION_NAME,
        # the app copies models out of the APK; stored uncompressed they could also be memory-mapped
        "-0", "tflite", "-0", "pte",
    ]
    if assets is not None:
        cmd += ["-A", str(assets)]
    run([*cmd, str(compiled)], what="apk: aapt2 link", timeout=300)
    return linked


def _compile_and_dex(tools: Toolchain, work: Path) -> Path:
    classes = work / "classes"
    java = sources.java_files(sources.MAIN_JAVA, work / "gen")
    # --release 8 takes java.* from JDK 8's API; android.* comes from the platform jar on the class path.
    run([tools.javac, "--release", "8", "-encoding", "UTF-8", "-nowarn", "-cp", str(tools.android_jar),
         "-d", str(classes), *map(str, java)], what="apk: javac", timeout=600)
    dex = work / "dex"
    dex.mkdir()
    # dx without --min-sdk-version 26 rejects lambdas: the app avoids them so it runs on API 23.
    run([tools.java, "-jar", str(tools.dx_jar), "--dex", f"--output={dex / 'classes.dex'}", str(classes)],
        what="apk: dx --dex", timeout=600)
    return dex / "classes.dex"


def _debug_keystore(tools: Toolchain) -> Path:
    keystore = tools.cache / "debug.keystore"
    if keystore.is_file():
        return keystore
    partial = keystore.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run([tools.keytool, "-genkeypair", "-keystore", str(partial), "-storetype", "PKCS12",
         "-storepass", KEY_PASSWORD, "-keypass", KEY_PASSWORD, "-alias", KEY_ALIAS, "-keyalg", "RSA",
         "-keysize", "2048", "-validity", "10000", "-dname", "CN=Android Debug,O=Android,C=US"],
        what="apk: keytool -genkeypair (debug key)", timeout=120)
    partial.rename(keystore)
    return keystore


def _sign(tools: Toolchain, aligned: Path, out: Path) -> None:
    keystore = _debug_keystore(tools)
    out.unlink(missing_ok=True)
    run([tools.apksigner, "sign", "--ks", str(keystore), "--ks-key-alias", KEY_ALIAS,
         "--ks-pass", f"pass:{KEY_PASSWORD}", "--key-pass", f"pass:{KEY_PASSWORD}", "--out", str(out),
         str(aligned)], what="apk: apksigner sign", timeout=300)


def _verify(tools: Toolchain, apk: Path) -> list[str]:
    """Runs `apksigner verify`; returns the schemes it verified, e.g. ['v1', 'v2']."""
    proc = run([tools.apksigner, "verify", "--verbose", str(apk)], what="apk: apksigner verify", timeout=300)
    text = proc.stdout.decode(errors="replace")
    schemes = re.findall(r"Verified using (v\d+(?:\.\d+)?) scheme \(.*\): true", text)
    if not text.startswith("Verifies") or not schemes:
        raise ToolError(f"apk: apksigner verify did not verify {apk}: {text.strip().splitlines()[:1]}")
    return schemes


def _badging(tools: Toolchain, apk: Path) -> dict[str, str]:
    text = run([tools.aapt, "dump", "badging", str(apk)], what="apk: aapt dump badging",
               timeout=120).stdout.decode(errors="replace")
    found = {
        "package": re.search(r"^package: name='([^']+)'", text, re.MULTILINE),
        "versionName": re.search(r"versionName='([^']*)'", text),
        "sdkVersion": re.search(r"^sdkVersion:'([^']+)'", text, re.MULTILINE),
        "launchable-activity": re.search(r"^launchable-activity: name='([^']+)'", text, re.MULTILINE),
    }
    missing = [k for k, m in found.items() if m is None]
    if missing:
        raise ToolError(f"apk: aapt dump badging shows no {', '.join(missing)} for {apk}")
    return {k: m.group(1) for k, m in found.items() if m is not None}
