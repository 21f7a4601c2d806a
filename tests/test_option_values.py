"""Option values that would be misread or hang: refused in one line naming the option (issue 23, cause 13)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, cli, one_line_refusal
from hypothesis import given
from hypothesis import strategies as st

from tests.test_fuzz import FUZZ


@pytest.mark.parametrize("option, value", [("--set", "train.epochs=1\n[evil]\nx=1"),
                                           ("--set", "train.epochs=1\r"),
                                           ("--target-set", "benchmark.runs=5\x1b[2K")])
def test_an_override_with_a_control_character_is_refused_naming_the_option(tmp_path, option, value):
    line = one_line_refusal(cli("run", option, value, "--build-dir", str(tmp_path / "build")))
    assert line.startswith(f"error: {option}: ") and "holds a newline or another control character" in line, line
    assert not (tmp_path / "build").exists()


def test_a_fifo_given_as_recipe_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "recipe.toml"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--recipe", str(fifo), "--build-dir",
                           str(tmp_path / "build")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = one_line_refusal(proc)
    assert line == f"error: {fifo}: is not a regular file (a pipe or a device?); give a TOML text file"


def test_an_override_is_never_cut_at_a_newline():
    from pipeline.core.errors import ConfigError
    from pipeline.recipe.files import parse_overrides

    with pytest.raises(ConfigError, match=r"^--set: train.epochs=1\\n\[evil\]\\nx=1: holds a newline"):
        parse_overrides(["train.epochs=1\n[evil]\nx=1"], "--set")
    assert parse_overrides(["train.epochs=1"], "--set") == {"train.epochs": 1}


@FUZZ
@given(st.text(max_size=80))
def test_any_override_text_is_parsed_whole_or_refused_naming_the_option(text):
    from pipeline.core.errors import ConfigError
    from pipeline.recipe.files import parse_overrides

    try:
        parsed = parse_overrides([f"train.epochs={text}"], "--set")
    except ConfigError as exc:
        assert str(exc).startswith("--set: ") and len(str(exc).splitlines()) == 1
        return
    assert text.isprintable() and set(parsed) == {"train.epochs"}
