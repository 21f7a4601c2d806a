"""A run keeps the temporary files of torch, onnxruntime and onnx2tf in its build dir, not in $TMPDIR (issue 23,
cause 13)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.core import proc
from pipeline.engine import runner
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target

ORT_CHILD = """
import pipeline  # every child of a run imports it first (python -m pipeline...)
import os, tempfile, onnx, onnxruntime
from onnx import helper, TensorProto
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
onnxruntime.InferenceSession(helper.make_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
tempfile.NamedTemporaryFile(prefix="child-", delete=False).close()
print(os.environ["TMPDIR"], os.environ["TORCHINDUCTOR_CACHE_DIR"])
"""


def test_children_put_their_temporary_files_in_the_given_folder(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("TMPDIR", str(outside))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    inside = tmp_path / "build" / "tmp"
    with proc.temporary_files_in(inside):
        done = proc.run([sys.executable, "-c", ORT_CHILD], what="onnxruntime child")
    assert done.stdout.decode().split() == [str(inside), str(inside / "torchinductor")]
    assert [p.name[:6] for p in inside.iterdir()] == ["child-"] and not list(outside.iterdir()), list(inside.iterdir())
    assert not list(home.iterdir()), list(home.rglob("*"))  # onnxruntime's telemetry wrote its device id here
    assert os.environ["TMPDIR"] == str(outside) and "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_a_run_confines_temporary_files_to_its_build_dir(tmp_path, monkeypatch):
    seen = {}

    def fake_execute(execution) -> Path:
        seen.update({k: os.environ.get(k) for k in ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")})
        return tmp_path

    monkeypatch.setattr(runner.Execution, "execute", fake_execute)
    monkeypatch.setattr("torch.set_num_threads", lambda n: None)  # the test process keeps its own threads
    build = tmp_path / "build"
    runner.run(load_recipe("fashion-mnist-mobilenetv2"), load_target("host"), runner.RunOptions(build_dir=build))
    assert seen == {"TMPDIR": str(build / "tmp"), "TORCHINDUCTOR_CACHE_DIR": str(build / "tmp" / "torchinductor")}
