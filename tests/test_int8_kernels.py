"""The microkernel evidence tool (pipeline/evidence/int8_kernels.py, `make evidence-int8-kernels`): its callgrind
reader on a written dump, and one real layer counted in LiteRT under callgrind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.evidence.callgrind_file import read_dump

DUMP = """version: 1
creator: callgrind-3.19.0
positions: instr
events: Ir
ob=(1) /lib/libk.so
fl=(1) ???
fn=(1) kernel
0x1000 10
+4 5
* 2
cob=(1)
cfn=(2) helper
calls=1 0x2000
+3 100
fn=(2)
0x2000 90
-16 10
fn=(1)
0x1007 1
totals: 118
"""


def test_callgrind_reader_gives_self_cost_per_function_and_address_without_the_calls(tmp_path: Path):
    path = tmp_path / "callgrind.out.1"
    path.write_text(DUMP)
    dump = read_dump(path)
    assert dump.total == 118
    assert dump.by_function == {("/lib/libk.so", "kernel"): 18, ("/lib/libk.so", "helper"): 100}
    assert dump.by_address[("/lib/libk.so", 0x1004)] == 7  # "+4 5" then "* 2": the same address
    assert dump.by_address[("/lib/libk.so", 0x1007)] == 1  # the call's inclusive line (+3 100) is not self cost
    assert dump.by_address[("/lib/libk.so", 0x1FF0)] == 10
    assert sum(dump.by_function.values()) == dump.total


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed (make setup installs it)")
def test_a_litert_depthwise_layer_counts_its_xnnpack_kernel_per_invoke_and_int8_differs_from_fp32(tmp_path: Path):
    from pipeline.evidence.int8_kernels import XNNPACK_OBJECT, measure
    from pipeline.evidence.single_layer import ConvLayer

    rows = measure(tmp_path, layers=(ConvLayer(14, 64, None, 3, 1),), runtimes=("litert",), with_perf=False)["rows"]
    counts = {}
    for row in rows:
        cg = row["callgrind"]
        assert cg["top_objects"][0][0] == XNNPACK_OBJECT["litert"], cg["top_objects"]
        kernel = cg["top_functions"][0][0]
        assert kernel.startswith("xnn_") and "dwconv" in kernel, cg["top_functions"]
        assert ("qs8" in kernel) == (row["precision"] == "int8"), kernel
        assert min(cg["ir_per_invoke"]) > 0
        counts[row["precision"]] = cg["ir_per_invoke"][-1]
        assert sum(cg["hot_code"]["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert counts["fp32"] != counts["int8"], counts
