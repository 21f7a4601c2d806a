"""The hand-built demo APK (aapt2, javac, dx, zipalign, apksigner) and `copy-bundle`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from test_android_demo import GREY_28, photos, write_fixture_bundle

from pipeline.android.apk_build import ApkReport, build_apk
from pipeline.android.cli import copy_bundle, main
from pipeline.android.sources import PACKAGE
from pipeline.android.toolchain import ensure_toolchain
from pipeline.core.proc import run


@pytest.fixture(scope="module")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    write_fixture_bundle(root, GREY_28, dict(list(photos().items())[:3]))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, fixture_bundle: Path) -> ApkReport:
    return build_apk(tmp_path_factory.mktemp("apk") / "demo.apk", bundle=fixture_bundle)


def test_apk_is_signed_and_verifies(built: ApkReport) -> None:
    tools = ensure_toolchain()
    out = run([tools.apksigner, "verify", "--verbose", str(built.apk)], what="test: apksigner verify")
    assert out.stdout.decode().startswith("Verifies")
    assert "v2" in built.signature_schemes


def test_apk_badging_shows_the_package_and_launcher(built: ApkReport) -> None:
    tools = ensure_toolchain()
    badging = run([tools.aapt, "dump", "badging", str(built.apk)], what="test: aapt badging").stdout.decode()
    assert f"package: name='{PACKAGE}'" in badging
    assert f"launchable-activity: name='{PACKAGE}.app.MainActivity'" in badging
    assert built.sdk_version == "23"


def test_apk_carries_the_bundle_and_the_code_but_not_the_runtime_glue(built: ApkReport) -> None:
    with zipfile.ZipFile(built.apk) as apk:
        names = set(apk.namelist())
        dex = apk.read("classes.dex")
    assert {"classes.dex", "assets/bundle/metadata.json", "assets/bundle/samples/camera-40x40-grey.png"} <= names
    assert b"Ldev/phonepipeline/demo/core/Preprocessor;" in dex
    assert b"Ldev/phonepipeline/demo/app/MainActivity;" in dex
    # The glue needs the LiteRT/ExecuTorch libraries: the app must find it missing and say so.
    assert b"LiteRtRuntime;" not in dex and b"ExecuTorchRuntime;" not in dex


def test_copy_bundle_replaces_the_destination(fixture_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "assets" / "bundle"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an older bundle")
    copy_bundle(fixture_bundle, dest)
    assert (dest / "metadata.json").is_file()
    assert not (dest / "stale.txt").exists()


def test_copy_bundle_refuses_a_dir_without_metadata_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["copy-bundle", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: copy-bundle: {tmp_path} has no metadata.json; pass a release bundle directory\n"
