"""Release bundles from the shared end-to-end run, and `pipeline verify` on good and damaged bundles (real runtimes)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from pipeline.core.errors import UserError
from pipeline.release import archive, checksums
from pipeline.release.verify import verify

NAME = "tiny-0.1.0-test-host"


def _release(e2e: dict, tiny_recipe: Path, test_target: Path, out: Path):
    return cli("release", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir",
               str(e2e["build"]), "--out", str(out))


@pytest.fixture(scope="module")
def released(e2e: dict, tiny_recipe: Path, test_target: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("release-a")
    proc = _release(e2e, tiny_recipe, test_target, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"proc": proc, "out": out, "archive": out / f"{NAME}.tar.gz", "dir": out / NAME}


def _copy_tree(released: dict, tmp_path: Path) -> Path:
    return Path(shutil.copytree(released["dir"], tmp_path / NAME))


def _metadata(root: Path) -> dict:
    return json.loads((root / "metadata.json").read_text())


def _refusal(bundle: Path) -> str:
    with pytest.raises(UserError) as err:
        verify(bundle)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_release_prints_the_archive_path_last_and_ships_the_expected_files(released: dict) -> None:
    assert released["proc"].stdout.strip().splitlines()[-1] == str(released["archive"])
    root = released["dir"]
    meta = _metadata(root)
    expected = {"metadata.json", "MODEL_CARD.md", "report.md", "report.json", "VERSIONS.json", "SHA256SUMS"}
    assert expected <= {p.name for p in root.iterdir()}
    assert {a["format"] for a in meta["artifacts"]} == {"tflite", "pte"}
    for a in meta["artifacts"]:
        assert (root / a["file"]).is_file() and (root / a["sample_outputs"]).is_file()
        assert np.load(root / a["sample_outputs"]).shape == (16, 10)
    assert len(meta["samples"]) == 16 and all((root / s["file"]).is_file() for s in meta["samples"])
    listed = [line.split("  ", 1)[1] for line in (root / "SHA256SUMS").read_text().splitlines()]
    assert listed == checksums.bundle_files(root) and "SHA256SUMS" not in listed
    text = "\n".join(p.read_text() for p in root.glob("*.json")) + (root / "MODEL_CARD.md").read_text()
    assert str(released["out"]) not in text and "/tmp/" not in text
    assert "not on a phone" in (root / "MODEL_CARD.md").read_text()


def test_release_ships_the_fastest_passing_artifact_of_each_format(released: dict, e2e: dict) -> None:
    meta = _metadata(released["dir"])
    # The run's measurements as of the release (other tests re-measure the shared run: compare with what shipped).
    shipped_report = json.loads((released["dir"] / "report.json").read_text())
    rows = [a for a in shipped_report["artifacts"] if a["format"] in ("tflite", "pte") and a["gate"] == "pass"]
    for fmt in ("tflite", "pte"):
        fastest = min((a for a in rows if a["format"] == fmt), key=lambda a: a["latency_ms"]["p50"])
        assert [a["name"] for a in meta["artifacts"] if a["format"] == fmt] == [fastest["name"]]
    assert {c["name"] for c in meta["selection"]["candidates"]} == {a["name"] for a in rows}
    assert all(c["p50_ms"] > 0 for c in meta["selection"]["candidates"])


def test_two_releases_of_the_same_run_are_byte_identical(
    released: dict, e2e: dict, tiny_recipe: Path, test_target: Path, tmp_path: Path
) -> None:
    proc = _release(e2e, tiny_recipe, test_target, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = (tmp_path / f"{NAME}.tar.gz").read_bytes()
    assert data == released["archive"].read_bytes()
    assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08  # gzip: mtime 0, no file name
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members if m.isfile()} == {0o644} and {m.mode for m in members if m.isdir()} == {0o755}


def test_verify_accepts_the_good_bundle(released: dict) -> None:
    proc = cli("verify", str(released["archive"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].endswith(f"{NAME}.tar.gz: OK")
    verdict = verify(released["dir"])
    assert {a.name for a in verdict.artifacts} == {a["name"] for a in _metadata(released["dir"])["artifacts"]}
    assert all(a.samples == 16 and a.max_abs_diff <= a.allowed for a in verdict.artifacts)


def test_verify_refuses_a_changed_byte_in_a_model_with_one_line_and_exit_2(released: dict, tmp_path: Path) -> None:
    root = _copy_tree(released, tmp_path)
    model = root / _metadata(root)["artifacts"][0]["file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    packed = tmp_path / "damaged.tar.gz"
    packed.write_bytes(archive.tar_gz_bytes(root, NAME))
    proc = cli("verify", str(packed))
    assert proc.returncode == 2
    rel = model.relative_to(root).as_posix()
    assert proc.stderr.strip() == f"error: verify: damaged.tar.gz: {rel}: sha256 mismatch"


def test_verify_refuses_a_truncated_archive(released: dict, tmp_path: Path) -> None:
    data = released["archive"].read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated or not a .tar.gz" in _refusal(cut)


def test_verify_refuses_metadata_that_is_not_json(released: dict, tmp_path: Path) -> None:
    root = _copy_tree(released, tmp_path)
    (root / "metadata.json").write_text('{"schema": "phone-pipeline/bundle/1",')
    checksums.write(root)  # as a careless repacker would: the sums match, the document does not parse
    assert "metadata.json: not valid JSON" in _refusal(root)


def test_verify_names_the_key_of_a_schema_error(released: dict, tmp_path: Path) -> None:
    root = _copy_tree(released, tmp_path)
    meta = _metadata(root)
    meta["artifacts"][1]["layout"] = "NWHC"
    (root / "metadata.json").write_text(json.dumps(meta))
    checksums.write(root)
    assert _refusal(root).endswith("metadata.json: artifacts[1].layout: expected one of \"NCHW\", \"NHWC\", "
                                   "got \"NWHC\"")
    del meta["input"]["std"]
    (root / "metadata.json").write_text(json.dumps(meta))
    checksums.write(root)
    assert _refusal(root).endswith("metadata.json: input.std: missing")


def test_verify_refuses_a_tampered_sha256sums(released: dict, tmp_path: Path) -> None:
    root = _copy_tree(released, tmp_path)
    lines = (root / "SHA256SUMS").read_text().splitlines()
    digest, rel = lines[0].split("  ", 1)
    lines[0] = f"{'0' if digest[0] != '0' else '1'}{digest[1:]}  {rel}"
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    assert _refusal(root).endswith(f"{rel}: sha256 mismatch")
    (root / "SHA256SUMS").write_text("not a checksum line\n")
    assert "SHA256SUMS: line 1" in _refusal(root)


def test_verify_refuses_outputs_the_artifact_no_longer_reproduces(released: dict, tmp_path: Path) -> None:
    root = _copy_tree(released, tmp_path)
    entry = _metadata(root)["artifacts"][0]
    want = np.load(root / entry["sample_outputs"])
    want[3, 2] += 0.5
    np.save(root / entry["sample_outputs"], want)
    checksums.write(root)
    assert f"{entry['file']}: output {entry['outputs'][0]['name']!r} differs from the recorded one" in _refusal(root)


def _evil_archive(released: dict, path: Path, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
    """The good bundle's members plus one hostile member, appended last (after good files that would be written)."""
    with tarfile.open(released["archive"]) as good, tarfile.open(path, "w:gz") as evil:
        for m in good.getmembers():
            evil.addfile(m, good.extractfile(m) if m.isfile() else None)
        evil.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return path


def _file_member(name: str, payload: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info


def _link_member(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, reason", [
    (_file_member(f"{NAME}/../escape.txt", b"pwned"), "path leaves the bundle"),
    (_file_member("/tmp/phone-pipeline-absolute.txt", b"pwned"), "absolute path"),
    (_link_member(f"{NAME}/models/link", "/etc/passwd", tarfile.SYMTYPE), "symbolic link"),
    (_link_member(f"{NAME}/models/hard", "/etc/passwd", tarfile.LNKTYPE), "hard link"),
    (_link_member(f"{NAME}/dev-null", "", tarfile.CHRTYPE), "not a plain file"),
], ids=["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_verify_refuses_hostile_members_before_writing_anything(
    released: dict, tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    evil = _evil_archive(released, tmp_path / "evil.tar.gz", member, b"pwned" if member.isfile() else b"")
    assert f"refused: {reason}" in _refusal(evil)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UserError, match=reason):
        archive.safe_extract(evil, dest)
    assert list(dest.iterdir()) == []  # refused before the good members were written either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "evil.tar.gz"]
    assert not Path("/tmp/phone-pipeline-absolute.txt").exists()


def test_bundle_metadata_parses_with_the_android_demo_parser(released: dict, tmp_path: Path) -> None:
    if shutil.which("javac") is None:
        pytest.skip("no JDK on this machine")
    from PIL import Image

    from pipeline.android import host_jvm
    from pipeline.artifacts.preprocess import InputSpec, preprocess, quantize_int8

    classes = host_jvm.compile_core(tmp_path / "classes")
    root = released["dir"]
    meta = _metadata(root)
    png = root / meta["samples"][0]["file"]
    spec = InputSpec.from_dict(meta["input"])
    for a in meta["artifacts"]:
        got = host_jvm.preprocess_with_java(classes, root / "metadata.json", a["name"], png, tmp_path / "java.bin")
        want = preprocess(np.asarray(Image.open(png)), spec, layout=a["layout"]).astype("<f4")
        if a["input_dtype"] == "int8":  # int8 TFLite inputs: the app quantizes with the file's own scale
            q = a["input_quantization"]
            want = quantize_int8(want, q["scale"], q["zero_point"])
        want = want.tobytes()
        assert got == want, a["name"]


def test_verify_accepts_the_archive_written_without_gzip_name_or_time(released: dict) -> None:
    with gzip.open(released["archive"]) as f:
        assert f.read(512)[:len(NAME)] == NAME.encode()


def test_a_failed_release_leaves_no_bundle_and_no_temporary_folder(e2e: dict, tiny_recipe: Path,
                                                                   tmp_path: Path) -> None:
    from pipeline.engine.recipes import load_recipe
    from pipeline.release import bundle

    run_dir = Path(shutil.copytree(e2e["run_dir"], tmp_path / "run"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for rec in manifest["stages"]:
        for a in rec["artifacts"]:
            if a["format"] == "pte":
                a["sha256"] = "0" * 64  # the cached file no longer matches its record: release must stop
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    with pytest.raises(UserError, match="sha256 differs from the manifest"):
        bundle.build(run_dir, load_recipe(str(tiny_recipe)), out)
    assert list(out.iterdir()) == []
