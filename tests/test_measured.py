"""Measured files and the README sections made from them: `record`, `run --record` and `readme [--check]`.

The fake run folder has the shape of a real run's report.json and manifest.json (the default recipe on the host),
cut to a few artifacts; nothing here trains or times anything.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline import cli, measured, measured_readme

ROOT = Path(__file__).resolve().parent.parent

REPORT = {
    "schema": "phone-pipeline/report/1",
    "created": "2026-12-07T10:28:33+00:00",
    "recipe": {"name": "tiny", "version": "0.1.0", "path": "/x/tiny.toml", "sha256": "ab" * 32},
    "target": {"name": "test-host", "path": "/x/test-host.toml"},
    "host": {"machine": "x86_64", "processor": "x86_64", "cpu_count": 2, "system": "Linux 6.1.0",
             "python": "3.12.3", "compute_threads": 1, "training_threads": "1 or 2"},
    "tools": {"torch": "2.9.0", "ai-edge-litert": "2.0.2"},
    "model": {"source": "registry"},
    "evaluation": {"samples": 10000, "fp32_accuracy": 0.9048, "labelled": True, "threads": 1},
    "benchmark": {"settings": {"warmup": 20, "runs": 200, "threads": 1, "max_seconds": 15}, "device": "host",
                  "rounds": 3, "stopped": "max_seconds",
                  "machine": {"cpu_count": 2, "load1_before": 2.61, "load1_after": 3.02, "load1_max": 3.4,
                              "steal_fraction": 0.0005, "warnings": ["load average 3.4 on 2 cores"]},
                  "not_timed": {"pt2-pruned-int8-ptq": "a PyTorch int8 reference"}},
    "gates": {"enforced": True, "violations": []},
    "artifacts": [
        {"name": "tflite-fp32", "format": "tflite", "precision": "fp32", "size_bytes": 394240, "runtime": "litert",
         "accuracy": 0.9048, "top1_agreement": 1.0, "max_abs_diff": 9.5e-6, "reference": "torch-fp32",
         "latency_ms": {"p50": 0.101, "p90": 0.104, "p99": 0.11, "mean": 0.102, "std": 0.002, "cv": 0.02},
         "rounds": 3, "speedup": None, "gate": "pass"},
        {"name": "tflite-pruned-int8-qat", "format": "tflite", "precision": "int8", "size_bytes": 98304,
         "runtime": "litert", "accuracy": 0.8902, "top1_agreement": 0.9901, "max_abs_diff": 2.7,
         "reference": "tflite-pruned-fp32",
         "latency_ms": {"p50": 0.037, "p90": 0.039, "p99": 0.04, "mean": 0.037, "std": 0.001, "cv": 0.03},
         "rounds": 3, "speedup": {"baseline": "tflite-fp32", "ratio": 2.76, "ci_low": 2.75, "ci_high": 2.77,
                                  "confidence": 0.95, "rel_width": 0.007}, "gate": "pass"},
        {"name": "pt2-pruned-int8-ptq", "format": "pt2", "precision": "int8", "size_bytes": 120000,
         "runtime": "torch", "accuracy": 0.8881, "top1_agreement": 1.0, "max_abs_diff": 0.0,
         "reference": "pt2-pruned-int8-ptq", "latency_ms": None, "rounds": None, "speedup": None,
         "gate": "pass"},
    ],
    "stages": [{"name": "train", "cached": False, "seconds": 210.4, "skipped": None},
               {"name": "decompose", "cached": False, "seconds": 0.0, "skipped": "decompose.enabled = false"}],
    "pruning": {"before": {"macs": 4730000, "params": 97226}, "after": {"macs": 2120000, "params": 45482},
                "accuracy_before_finetune": 0.1, "accuracy": 0.8913},
}
MANIFEST = {
    "schema": "phone-pipeline/manifest/1",
    "target": {"name": "test-host", "path": "/x/test-host.toml", "sha256": "cd" * 32, "settings": {}},
    "recipe": {"name": "tiny", "settings": {"train": {"epochs": 3}, "prune": {"enabled": True, "macs_factor": 2.0,
                                                                            "finetune": {"epochs": 1.5}},
                                            "quantize": {"methods": ["ptq", "qat"]}}},
    "options": {"overrides": {"recipe": {}, "target": {}}},
}
README_TEXT = """# title

Hand-written text that stays.

<!-- measured:begin tiny__test-host.glance -->
old
<!-- measured:end tiny__test-host.glance -->

More hand-written text.

<!-- measured:begin tiny__test-host -->
<!-- measured:end tiny__test-host -->

<!-- measured:begin index -->
<!-- measured:end index -->
tail
"""


def _run_folder(tmp_path: Path, report: dict | None = None) -> Path:
    run = tmp_path / "runs" / "tiny__test-host"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(REPORT if report is None else report))
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    return run


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_record_writes_where_when_the_settings_and_each_artifacts_numbers(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _cli(capsys, "record", str(_run_folder(tmp_path)), "--measured-dir", str(tmp_path / "measured"))
    path = tmp_path / "measured" / "tiny__test-host.json"
    assert code == 0 and out.strip() == str(path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == measured.SCHEMA and doc["date"] == "2026-12-07T10:28:33Z"
    assert doc["machine"] == {"processor": "x86_64", "cores": 2, "python": "3.12.3", "system": "Linux 6.1.0"}
    assert doc["load"]["load1_max"] == 3.4 and doc["load"]["warnings"] == ["load average 3.4 on 2 cores"]
    assert doc["recipe"]["sha256"] == "ab" * 32 and doc["target"] == {"name": "test-host", "sha256": "cd" * 32}
    assert doc["settings"]["epochs"] == 3 and doc["settings"]["quantize_methods"] == ["ptq", "qat"]
    assert doc["settings"]["pruning"] == {"enabled": True, "macs_factor": 2.0, "finetune_epochs": 1.5}
    assert doc["settings"]["benchmark"] == {"threads": 1, "warmup": 20, "runs": 200, "rounds": 3,
                                            "stopped": "max_seconds"}
    qat = doc["artifacts"][1]
    assert qat["parity"] == {"reference": "tflite-pruned-fp32", "top1_agreement": 0.9901, "max_abs_diff": 2.7}
    assert qat["latency"] == {"p50_ms": 0.037, "p90_ms": 0.039, "rounds": 3}
    assert qat["speedup"]["ratio"] == 2.76 and qat["speedup"]["ci_low"] == 2.75 and qat["size_bytes"] == 98304
    assert doc["pruning"]["macs_after"] == 2120000 and doc["tools"]["torch"] == "2.9.0"
    assert doc["stages"][0] == {"name": "train", "seconds": 210.4, "cached": False}
    assert not list(path.parent.glob(".*.tmp"))  # written through a temp file, nothing left beside it


def test_record_leaves_out_what_the_report_does_not_have(tmp_path: Path) -> None:
    report = copy.deepcopy(REPORT)
    report["benchmark"]["machine"] = None
    del report["host"]["python"]
    report["pruning"] = None
    doc = json.loads(measured.record(_run_folder(tmp_path, report), tmp_path / "m").read_text())
    assert "load" not in doc and "python" not in doc["machine"] and "pruning" not in doc
    untimed = doc["artifacts"][2]
    assert "latency" not in untimed and "speedup" not in untimed and untimed["accuracy"] == 0.8881


def test_readme_fills_every_section_from_the_files_and_a_second_pass_changes_nothing(tmp_path: Path) -> None:
    measured.record(_run_folder(tmp_path), tmp_path / "measured")
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    changed = measured_readme.write(readme, tmp_path / "measured")
    text = readme.read_text()
    assert changed == ["tiny__test-host.glance", "tiny__test-host", "index"]
    assert "Hand-written text that stays.\n" in text and "More hand-written text.\n" in text and text.endswith("tail\n")
    prose = " ".join(text.split())  # prose is wrapped
    assert "2026-12-07 10:28 UTC on x86_64 (2 cores" in prose and "load average 2.6 -> 3.0 (max 3.4)" in prose
    assert "| tflite-pruned-int8-qat | litert | int8 | 96.0 | 0.8902 | 0.9901 | 2.7e+00 | 0.037 | 0.039 |" in text
    assert "2.76x [2.75, 2.77]" in text and "\nold\n" not in text
    assert "Stage seconds in that run (to_executorch runs beside to_onnx and to_tflite): train 210." in prose
    assert measured_readme.write(readme, tmp_path / "measured") == [] and readme.read_text() == text


def test_readme_check_fails_naming_the_section_when_a_generated_number_was_edited(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "measured"
    measured.record(_run_folder(tmp_path), folder)
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    measured_readme.write(readme, folder)
    args = ("readme", "--check", "--readme", str(readme), "--measured-dir", str(folder))
    assert _cli(capsys, *args)[0] == 0
    readme.write_text(readme.read_text().replace("| 0.037 |", "| 0.035 |", 1))
    code, _, err = _cli(capsys, *args)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "section 'tiny__test-host' differs" in err and "phone-pipeline readme" in err


def test_the_repository_readme_matches_its_measured_files(capsys: pytest.CaptureFixture) -> None:
    """A number edited by hand between the README's markers fails here: `make readme` regenerates them."""
    code, _, err = _cli(capsys, "readme", "--check")
    assert code == 0, err


@pytest.mark.parametrize("spoil, words", [
    (lambda run: run.rename(run.with_name("gone")), "not a folder"),
    (lambda run: (run / "report.json").unlink(), "report.json: missing"),
    (lambda run: (run / "report.json").write_text("{not json"), "report.json: not valid JSON"),
    (lambda run: (run / "report.json").write_text('{"schema": "other/1"}'), "schema is not"),
    (lambda run: (run / "report.json").write_text('{"schema": "phone-pipeline/report/1"}'),
     "cannot be read as a finished run"),
    (lambda run: (run / "manifest.json").write_text("[]"), "not a run manifest"),
    (lambda run: (run / "report.json").write_text(json.dumps({**REPORT, "recipe": {"version": "1"}})),
     "cannot be read as a finished run"),
    (lambda run: (run / "report.json").write_text(json.dumps({**REPORT, "recipe": {"name": "../up"}})),
     "cannot name a file in measured/"),
])
def test_a_bad_run_folder_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, spoil,
                                                 words: str) -> None:
    run = _run_folder(tmp_path)
    spoil(run)
    code, _, err = _cli(capsys, "record", str(run), "--measured-dir", str(tmp_path / "measured"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "measured").exists()


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "measured").write_text("")
    code, _, err = _cli(capsys, "record", str(_run_folder(tmp_path)), "--measured-dir", str(tmp_path / "measured"))
    assert code == 2 and "exists and is not a folder" in err and len(err.strip().splitlines()) == 1


def test_a_section_without_its_measured_file_is_one_line_and_exit_2(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "measured").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    code, _, err = _cli(capsys, "readme", "--readme", str(readme), "--measured-dir", str(tmp_path / "measured"))
    assert code == 2 and "no measured/tiny__test-host.json" in err and readme.read_text() == README_TEXT


def test_a_measured_file_that_cannot_be_shown_is_one_line_and_exit_2(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "measured"
    path = measured.record(_run_folder(tmp_path), folder)
    doc = json.loads(path.read_text())
    doc["artifacts"] = [{"precision": "fp32"}]
    path.write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    code, _, err = _cli(capsys, "readme", "--readme", str(readme), "--measured-dir", str(folder))
    assert code == 2 and "measured/tiny__test-host.json: cannot be shown" in err and len(err.splitlines()) == 1


def test_run_with_record_writes_the_file_after_the_run_and_refuses_a_bad_folder_before_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import runner

    runs = []
    monkeypatch.setattr(runner, "run", lambda *args: runs.append(args) or _run_folder(tmp_path))
    (tmp_path / "a-file").write_text("")
    code, _, err = _cli(capsys, "run", "--record", "--measured-dir", str(tmp_path / "a-file"))
    assert code == 2 and "exists and is not a folder" in err and runs == []
    code, out, _ = _cli(capsys, "run", "--record", "--measured-dir", str(tmp_path / "measured"))
    assert code == 0 and out.splitlines()[-1] == str(tmp_path / "measured" / "tiny__test-host.json") and len(runs) == 1
