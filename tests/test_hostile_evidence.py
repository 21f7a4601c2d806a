"""`make evidence-hostile` (pipeline/evidence/hostile_cases.py): its cases run the real CLI and are measured."""

from __future__ import annotations

import sys

from pipeline.evidence import hostile_cases


def test_the_pax_and_5000_digit_cases_are_one_line_exit_2_naming_the_file(tmp_path):
    results = {r["key"]: r for r in hostile_cases.run_all(tmp_path, ["1-pax-verify", "7-digits-verify"])}
    assert sorted(results) == ["1-pax-verify", "7-digits-verify"]
    for key, names in [("1-pax-verify", "pax.tar.gz"), ("7-digits-verify", "metadata.json")]:
        r = results[key]
        assert (r["exit"], r["stderr_lines"], r["leftovers"], r["behaved"]) == (2, 1, [], True), r
        assert r["printed"][0].startswith("error: verify: ") and names in r["printed"][0], r
        assert r["peak_mb"] > 0 and r["seconds"] > 0, r
    table = hostile_cases.markdown(list(results.values()))
    assert table.count("\n") == 4 and "| 2 | `error: verify: pax.tar.gz: refused: a pax extended header" in table


def test_the_peak_memory_is_the_childs_own(tmp_path):
    # 200 MB touched by the child shows; the parent's memory (this test process holds torch) does not
    grow = "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    big = hostile_cases.measure(["timeit", "-n", "1", "-s", grow, "pass"], tmp_path / "big", {}, 60)
    small = hostile_cases.measure(["timeit", "-n", "1", "pass"], tmp_path / "small", {}, 60)
    assert big["exit"] == small["exit"] == 0, (big["stderr"], small["stderr"])
    assert big["peak_kb"] > 200 << 10 > 4 * small["peak_kb"], (big["peak_kb"], small["peak_kb"])
    assert "torch" in sys.modules  # the parent is large: a measure that inherited its peak would fail above
