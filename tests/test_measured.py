"""Measured files and the README sections made from them: `record`, `run --record` and `readme [--check]`.

The fake run folder has the shape of a real run's report.json and manifest.json (the default recipe on the host),
cut to a few artifacts; nothing here trains or times anything.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.report import measured, measured_readme


def _row(name: str, fmt: str, precision: str, runtime: str, size: int, accuracy: float, agreement: float,
         diff: float, reference: str, p50: float | None = None, p90: float | None = None,
         speedup: dict | None = None) -> dict:
    """An artifact row with every key report.build writes (values from a run of the default recipe)."""
    timed = p50 is not None
    return {"name": name, "format": fmt, "precision": precision, "path": f"build/cache/x/{name}", "sha256": "0" * 64,
            "size_bytes": size, "device": "host", "runtime": runtime, "layout": "NHWC", "input_shape": [1, 28, 28, 1],
            "accuracy": accuracy, "top1_agreement": agreement, "max_abs_diff": diff, "mean_abs_diff": diff / 30,
            "accuracy_delta": 0.0, "reference": reference, "pruned": "pruned" in name, "lowrank": False,
            "params": 45482, "macs": 2123952, "quantization": "none", "quantized_by": None, "accuracy_drop": 0.99,
            "latency_ms": {"p50": p50, "p90": p90, "p99": 0.0597, "mean": 0.0775, "std": 0.57, "cv": 7.36}
            if timed else None, "prepare_p50_ms": 0.0086 if timed else None, "rounds": 3 if timed else None,
            "round_p50_ms": [p50, p50, p50] if timed else None, "min_ms": p50 if timed else None,
            "speedup": speedup, "load_ms": 1.12 if timed else None, "peak_rss_mb": 54.5 if timed else None,
            "threads": 1 if timed else None, "gate": "pass", "violations": [], "tools": {"onnx": "1.23.2"},
            "debug": None}


# A run of the default recipe on the host (2026-12-07), cut to three artifacts and renamed tiny / test-host.
REPORT = {
    "schema": "phone-pipeline/report/1", "created": "2026-12-07T10:28:33+00:00",
    "recipe": {"name": "tiny", "version": "0.1.0", "path": "pipeline/recipes/tiny.toml", "sha256": "ab" * 32},
    "target": {"name": "test-host", "path": "targets/test-host.toml"},
    "host": {"machine": "x86_64", "processor": "x86_64", "cpu_count": 2, "system": "Linux 6.18.44-fc-v1300",
             "python": "3.11.7", "compute_threads": 1, "training_threads": "auto: 1 or 2, whichever measures faster"},
    "tools": {"onnx2tf": "1.29.24", "torch": "2.13.0+cpu"},
    "model": {"source": "registry", "dataset": "fashion-mnist"},
    "evaluation": {"samples": 10000, "fp32_accuracy": 0.9011, "labelled": True, "threads": 1},
    "benchmark": {"settings": {"ci_rel_width": 0.1, "cooldown_s": 0.0, "max_rounds": 10, "max_seconds": 15.0,
                               "min_rounds": 3, "runs": 200, "threads": 1, "warmup": 20},
                  "device": "host", "rounds": 3, "stopped": "max_seconds",
                  "machine": {"cpu_count": 2, "load1_before": 7.11083984375, "load1_after": 7.60986328125,
                              "load1_max": 7.60986328125, "steal_fraction": 0.005868289502282112,
                              "warnings": ["load average reached 7.6 on 2 cores (the benchmark used 1)"]},
                  "not_timed": {"pt2-pruned-int8-ptq": "the PyTorch int8 reference"}},
    "gates": {"enforced": True, "violations": []},
    "artifacts": [
        _row("tflite-fp32", "tflite", "fp32", "litert", 394268, 0.9011, 1.0, 9.5367431640625e-06, "torch-fp32",
             0.1012005, 0.10271519999999999),
        _row("tflite-pruned-int8-qat", "tflite", "int8", "litert", 98664, 0.8912, 0.9946, 1.6333637237548828,
             "torch-pruned-fp32-qat-float", 0.0368295, 0.0371769,
             {"baseline": "tflite-fp32", "ci_high": 2.7567133067208003, "ci_low": 2.698248280275156,
              "confidence": 0.95, "ratio": 2.7478108581436076, "rel_width": 0.021276947164093635}),
        _row("pt2-pruned-int8-ptq", "pt2", "int8", "torch", 1300350, 0.8893, 1.0, 0.0, "pt2-pruned-int8-ptq"),
    ],
    "pruning": {"before": {"macs": 4727232, "params": 97226}, "after": {"macs": 2123952, "params": 45482},
                "macs_reduction": 2.2256774164387894, "params_reduction": 2.1376808407721737, "steps": 11,
                "target": {"macs_factor": 2.0}, "reached": True, "left_unpruned": [],
                "layers": [{"name": "features.0.0", "out_before": 16, "out_after": 8, "params_before": 144,
                            "params_after": 72}], "accuracy_before_finetune": 0.1, "accuracy": 0.8909},
    "decomposition": None,
    "on_device": [],
    "stages": [{"name": "train", "cached": False, "seconds": 212.41, "skipped": None},
               {"name": "decompose", "cached": False, "seconds": 0.0, "skipped": "decompose.enabled = false"}],
}
MANIFEST = {
    "schema": "phone-pipeline/manifest/1", "created": "2026-12-07T10:28:33+00:00",
    "target": {"name": "test-host", "path": "targets/test-host.toml", "sha256": "cd" * 32, "settings": {}},
    "recipe": {"name": "tiny", "path": "pipeline/recipes/tiny.toml", "sha256": "ab" * 32, "settings": {
        "train": {"epochs": 3.0}, "decompose": {"enabled": False}, "quantize": {"methods": ["ptq", "qat"]},
        "prune": {"enabled": True, "macs_factor": 2.0, "ratio": 0.0, "importance": "l2", "finetune": {"epochs": 1.5}}}},
    "options": {"force": False, "from": None, "no_gates": False, "only": [], "overrides": {"recipe": {}, "target": {}}},
    "stages": [],
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
    assert doc["machine"] == {"processor": "x86_64", "cores": 2, "python": "3.11.7", "system": "Linux 6.18.44-fc-v1300"}
    assert doc["load"] == {"load1_before": 7.11083984375, "load1_after": 7.60986328125, "load1_max": 7.60986328125,
                           "steal_fraction": 0.005868289502282112,
                           "warnings": ["load average reached 7.6 on 2 cores (the benchmark used 1)"]}
    assert doc["recipe"]["sha256"] == "ab" * 32 and doc["target"] == {"name": "test-host", "sha256": "cd" * 32}
    assert doc["settings"]["epochs"] == 3 and doc["settings"]["quantize_methods"] == ["ptq", "qat"]
    assert doc["settings"]["pruning"] == {"enabled": True, "macs_factor": 2.0, "ratio": 0.0, "importance": "l2",
                                          "finetune_epochs": 1.5}
    assert doc["settings"]["decompose"] is False and doc["settings"]["fp32_accuracy"] == 0.9011
    assert "overrides" not in doc["settings"]  # none given
    assert doc["settings"]["benchmark"] == {"threads": 1, "warmup": 20, "runs": 200, "rounds": 3,
                                            "stopped": "max_seconds"}
    qat = doc["artifacts"][1]
    assert qat["parity"] == {"reference": "torch-pruned-fp32-qat-float", "top1_agreement": 0.9946,
                             "max_abs_diff": 1.6333637237548828}
    assert qat["latency"] == {"p50_ms": 0.0368295, "p90_ms": 0.0371769, "rounds": 3}
    assert qat["speedup"] == {"baseline": "tflite-fp32", "ratio": 2.7478108581436076, "ci_low": 2.698248280275156,
                              "ci_high": 2.7567133067208003, "confidence": 0.95}
    assert qat["size_bytes"] == 98664 and qat["format"] == "tflite" and qat["runtime"] == "litert"
    assert doc["pruning"]["macs_after"] == 2123952 and doc["tools"] == {"onnx2tf": "1.29.24", "torch": "2.13.0+cpu"}
    assert doc["stages"][0] == {"name": "train", "seconds": 212.41, "cached": False}
    assert not list(path.parent.glob(".*.tmp"))  # written through a temp file, nothing left beside it


def test_record_leaves_out_what_the_report_does_not_have(tmp_path: Path) -> None:
    report = copy.deepcopy(REPORT)
    report["benchmark"]["machine"] = None
    del report["host"]["python"]
    report["pruning"] = None
    doc = json.loads(measured.record(_run_folder(tmp_path, report), tmp_path / "m").read_text())
    assert "load" not in doc and "python" not in doc["machine"] and "pruning" not in doc
    untimed = doc["artifacts"][2]
    assert "latency" not in untimed and "speedup" not in untimed and untimed["accuracy"] == 0.8893


def test_readme_fills_every_section_from_the_files_and_a_second_pass_changes_nothing(tmp_path: Path) -> None:
    measured.record(_run_folder(tmp_path), tmp_path / "measured")
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    changed = measured_readme.write(readme, tmp_path / "measured")
    text = readme.read_text()
    assert changed == ["tiny__test-host.glance", "tiny__test-host", "index"]
    assert "Hand-written text that stays.\n" in text and "More hand-written text.\n" in text and text.endswith("tail\n")
    prose = " ".join(text.split())  # prose is wrapped
    assert "2026-12-07 10:28 UTC on x86_64 (2 cores" in prose and "load average 7.1 -> 7.6 (max 7.6)" in prose
    assert "| tflite-pruned-int8-qat | litert | int8 | 96.4 | 0.8912 | 0.9946 | 1.6e+00 | 0.037 | 0.037 |" in text
    assert "2.75x [2.70, 2.76] vs tflite-fp32" in text and "\nold\n" not in text
    assert "Stage seconds in that run (to_executorch runs beside to_onnx and to_tflite): train 212." in prose
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
    from pipeline.engine import runner

    runs = []
    monkeypatch.setattr(runner, "run", lambda *args: runs.append(args) or _run_folder(tmp_path))
    (tmp_path / "a-file").write_text("")
    code, _, err = _cli(capsys, "run", "--record", "--measured-dir", str(tmp_path / "a-file"))
    assert code == 2 and "exists and is not a folder" in err and runs == []
    code, out, _ = _cli(capsys, "run", "--record", "--measured-dir", str(tmp_path / "measured"))
    assert code == 0 and out.splitlines()[-1] == str(tmp_path / "measured" / "tiny__test-host.json") and len(runs) == 1
