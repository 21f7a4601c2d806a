"""The Python API (issue 25): a module object in, validated artifacts out; the example notebook runs in a real
kernel twice (the second time from the cache); an unguarded script with the user's own package and an ONNX file
finishes; every recipe refusal of the CLI is a PipelineError with the same line; importing the API is cheap."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli, evaluated_outputs, write_recipe
from tests.networks import assert_outputs_differ_per_input
from tests.test_refusals import USER_MODELS, python_recipe

NOTEBOOK = ROOT / "docs" / "examples" / "from_python.ipynb"


def _stages(run_dir: Path) -> dict[str, bool]:
    return {s["name"]: s["cached"] for s in json.loads((run_dir / "manifest.json").read_text())["stages"]}


def _execute(path: Path, build: Path, timeout: int = 1500):
    import os

    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    os.environ["PIPELINE_EXAMPLE_BUILD"] = str(build)
    try:
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(build.parent)}})
        start = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - start
    finally:
        os.environ.pop("PIPELINE_EXAMPLE_BUILD", None)


def _text(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)


def test_the_example_notebook_runs_in_a_kernel_and_its_second_run_does_no_work(tmp_path):
    build = tmp_path / "build"
    first, first_s = _execute(NOTEBOOK, build)
    text = _text(first)
    assert "tflite-pruned-int8-ptq" in text and "pte-pruned-int8-ptq" in text and "best: " in text
    assert ".tar.gz" in text and "worst layer:" in text
    runs = list((build / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("smallcnn-")
    entries = sorted(p.relative_to(build / "cache") for p in (build / "cache").glob("*/*"))
    assert any(e.parts[0] == "train" for e in entries)
    second, second_s = _execute(NOTEBOOK, build)
    assert sorted(p.relative_to(build / "cache") for p in (build / "cache").glob("*/*")) == entries  # nothing new
    cached = _stages(runs[0])
    assert all(cached[s] for s in cached if s != "report"), cached  # the report is rebuilt every run, cheaply
    assert second_s < first_s / 2, (first_s, second_s)
    print(f"notebook: first execution {first_s:.0f} s, second {second_s:.0f} s (every stage cached)")


SCRIPT = """
import json, sys
import torch
from mynet.blocks import TinyNet          # the user's own package, next to this script
from pipeline.api import run

torch.manual_seed(0)
small = {"dataset": "fashion-mnist", "eval_samples": 200}
result = run(TinyNet(), small, target=sys.argv[1], build_dir=sys.argv[2],
             train={"epochs": 1, "max_train_samples": 2000}, prune={"enabled": False}, quantize={"methods": []})
trained = TinyNet()  # the run's trained weights: a fresh TinyNet gave class 7 for all 200 pictures
trained.load_state_dict(torch.load(result.artifacts["torch-fp32"].path, weights_only=True))
torch.onnx.export(trained.eval(), (torch.zeros(1, 1, 28, 28),), sys.argv[3], dynamo=False,
                  input_names=["input"], output_names=["logits"])
imported = run(sys.argv[3], {"dataset": "fashion-mnist", "eval_samples": 200}, target=sys.argv[1],
               build_dir=sys.argv[2])
print(json.dumps({"module": sorted(result.artifacts), "onnx": sorted(imported.artifacts),
                  "onnx_agreement": imported.artifacts["tflite-fp32"].top1_agreement,
                  "onnx_run": str(imported.folder)}))
"""

PACKAGE = '''
import torch.nn as nn


def widen(c):
    return 2 * c


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, widen(4), 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.classifier = nn.Linear(widen(4), 10)

    def forward(self, x):
        return self.classifier(self.body(x))
'''


def test_an_unguarded_script_runs_a_module_of_its_own_package_and_an_onnx_file(tmp_path):
    from tests.conftest import write_target

    (tmp_path / "mynet").mkdir()
    (tmp_path / "mynet" / "__init__.py").write_text("")
    (tmp_path / "mynet" / "blocks.py").write_text(PACKAGE)
    (tmp_path / "script.py").write_text(SCRIPT)  # no `if __name__ == "__main__"` guard
    target = write_target(tmp_path, runs=5, build='["onnx-fp32", "tflite-fp32", "pte-fp32"]')
    proc = subprocess.run([sys.executable, "script.py", str(target), str(tmp_path / "build"),
                           str(tmp_path / "model.onnx")], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"torch-fp32", "onnx-fp32", "tflite-fp32", "pte-fp32"} <= set(out["module"])
    assert {"onnx-fp32", "tflite-fp32"} <= set(out["onnx"]) and out["onnx_agreement"] == 1.0
    assert_outputs_differ_per_input(evaluated_outputs(Path(out["onnx_run"]), "onnx-fp32"))  # agreement means something
    # the module travelled by value: the package is not importable from the build folder's processes
    assert list((tmp_path / "build" / "api" / "modules").glob("*.pkl"))


def _file(name: str, content: bytes):
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path
    return make


def _folder(folder: Path) -> Path:
    (folder / "dir.toml").mkdir()
    return folder / "dir.toml"


REFUSED_RECIPES = [  # the recipe refusals of tests/test_refusals.py, and a few more
    ("wrong entry form", lambda d: python_recipe(d, "shuffle_net.py")),
    ("no such function", lambda d: python_recipe(d, f"{USER_MODELS}/shuffle_net.py:nope")),
    ("no such module", lambda d: python_recipe(d, "no_such_package.module:build")),
    ("syntax error", lambda d: (d.joinpath("bad_net.py").write_text("import torch\n\ndef build(:\n    pass\n"),
                                python_recipe(d, "bad_net.py:build", ""))[1]),
    ("binary file", _file("hostile.toml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")),
    ("utf-16 file", _file("hostile.toml", "[recipe]\nname = 'x'\n".encode("utf-16"))),
    ("64-bit overflow", _file("hostile.toml", b"[recipe]\nname = 'x'\n[train]\nseed = 99999999999999999999\n")),
    ("infinite epochs", _file("hostile.toml", b"[recipe]\nname = 'x'\n[train]\nepochs = inf\n")),
    ("nan lr", _file("hostile.toml", b"[recipe]\nname = 'x'\n[train]\nlr = nan\n")),
    ("version with a slash", _file("hostile.toml", b"[recipe]\nname = 'x'\nversion = '1/2'\n")),
    ("model file as recipe", _file("model.onnx", bytes(range(256)) * 4)),
    ("folder as recipe", _folder),
    ("missing entry file", lambda d: python_recipe(d, f"{USER_MODELS}/missing.py:build")),
    ("misspelled setting", lambda d: python_recipe(d, f"{USER_MODELS}/shuffle_net.py:build", "widht = 16")),
    ("unknown key", lambda d: write_recipe(d, "bad1", **{"train.epoch": "2"})),
    ("value out of range", lambda d: write_recipe(d, "bad2", **{"prune.macs_factor": "0.5"})),
    ("wrong type", lambda d: write_recipe(d, "bad3", **{"quantize.methods": '"ptq"'})),
    ("unsafe name", lambda d: write_recipe(d, "bad4", **{"recipe.name": '"../up"'})),
]


@pytest.mark.parametrize("case, make", REFUSED_RECIPES, ids=[c for c, _ in REFUSED_RECIPES])
def test_every_recipe_refusal_of_the_cli_is_a_pipeline_error_with_the_same_line(tmp_path, case, make):
    from pipeline.api import PipelineError, run

    recipe = make(tmp_path)
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    with pytest.raises(PipelineError) as info:
        run(recipe=recipe, build_dir=tmp_path / "b")
    assert f"error: {info.value.message}" == line
    assert info.value.exit_code == 2 and not isinstance(info.value, SystemExit)


def test_a_setting_that_is_not_a_table_is_refused_naming_it(tmp_path):
    from pipeline.api import PipelineError, run

    with pytest.raises(PipelineError, match=r"prune=2.0: a recipe setting is a table") as info:
        run(recipe=write_recipe(tmp_path), build_dir=tmp_path / "b", prune=2.0)
    assert info.value.key == "prune"


def test_importing_the_api_is_cheap_and_loads_no_runtime():
    code = textwrap.dedent("""
        import sys, time
        start = time.perf_counter()
        import pipeline.api
        from pipeline import run
        seconds = time.perf_counter() - start
        heavy = [m for m in ("torch", "tensorflow", "executorch", "ai_edge_litert", "onnxruntime") if m in sys.modules]
        print(seconds, heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    assert float(seconds) < 1.0, seconds


def test_a_module_fingerprint_follows_code_and_weights_not_identity():
    import torch
    import torch.nn as nn

    from pipeline.api.modules import fingerprint

    def make(seed: int, width: int = 8) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.Flatten())

    assert fingerprint(make(0)) == fingerprint(make(0))  # another object, the same code and weights
    assert fingerprint(make(0)) != fingerprint(make(1))  # another weight
    assert fingerprint(make(0)) != fingerprint(make(0, width=4))  # another structure
    changed = make(0)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 1e-3
    assert fingerprint(changed) != fingerprint(make(0))


def test_plan_is_the_cli_dry_run(tmp_path):
    from pipeline.api import plan

    recipe = write_recipe(tmp_path)
    text = plan(recipe=recipe, build_dir=tmp_path / "b", from_stage="benchmark")
    proc = cli("run", "--recipe", str(recipe), "--build-dir", str(tmp_path / "b"), "--from", "benchmark",
               "--dry-run")
    assert proc.returncode == 0 and proc.stdout.strip() == text.strip()
    assert not (tmp_path / "b").exists()
