"""Folder options that cannot be folders, and names too long for one folder: one line, exit 2, naming the option
(issue 23, cause 12)."""

from __future__ import annotations

import pytest
from conftest import cli, one_line_refusal, write_recipe, write_target


@pytest.mark.parametrize("command, option, below", [("run", "--build-dir", ""), ("run", "--build-dir", "sub/dir"),
                                                    ("run", "--run-dir", ""), ("release", "--build-dir", "sub"),
                                                    ("release", "--out", ""), ("search", "--build-dir", "")])
def test_a_folder_option_that_is_a_file_is_refused_naming_the_option(tmp_path, command, option, below):
    afile = tmp_path / "afile"
    afile.write_text("")
    given = afile / below if below else afile
    line = one_line_refusal(cli(command, option, str(given)))
    assert f"argument {option}: {given} " in line and "a file, not a folder" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_recipe_and_target_too_long_for_one_folder_name_are_refused(tmp_path):
    recipe = write_recipe(tmp_path, "r" * 128)
    target = write_target(tmp_path)
    target.write_text(target.read_text().replace('name = "test-host"', f'name = "{"t" * 128}"'))
    line = one_line_refusal(cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir",
                         str(tmp_path / "build")))
    assert line.startswith("error: --recipe/--target: the run folder name ") and "258 characters" in line, line
    assert not (tmp_path / "build" / "runs").exists()
