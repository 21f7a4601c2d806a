"""A background stage (Stage.background: to_executorch) runs beside the stages after it, a stage that needs it waits
for it, and when it fails the run fails naming it, with nothing of it left in the cache. The stages here are small
functions run by the real runner; the events make each case exact (a runner that ran them one after another would
time out at the first wait, not pass by luck)."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline import stages
from pipeline.core.errors import StageCrash
from pipeline.data import array_cache
from pipeline.engine import runner
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target
from pipeline.stages.contract import Stage, StageOutput


def _settings(recipe, target) -> dict:
    return {}


@pytest.fixture
def run_stages(monkeypatch, tmp_path):
    """Run the real runner over the given stages (one thread, so the process's torch settings stay as they were)."""
    threads = torch.get_num_threads()

    def run(fake: tuple[Stage, ...]):
        monkeypatch.setattr(stages, "STAGES", fake)
        monkeypatch.setattr(runner, "STAGES", fake)
        # a stage key hashes the source of the pipeline's own files; these stages live in this test file
        monkeypatch.setattr(runner, "stage_key", lambda stage, settings, inputs: f"{stage.name}-key")
        return runner.run(load_recipe("fashion-mnist-mobilenetv2"), load_target("host"),
                          runner.RunOptions(build_dir=tmp_path, threads=1))

    yield run
    torch.set_num_threads(threads)
    array_cache.set_root(None)


def test_a_background_stage_runs_beside_the_next_one_and_its_dependents_wait(run_stages):
    import threading

    started, beside = threading.Event(), threading.Event()

    def lowering(ctx):
        started.set()
        assert beside.wait(60), "the next stage did not run while this one ran"
        return StageOutput((), {"programs": 2})

    def converting(ctx):
        assert started.wait(60), "the background stage never started"
        beside.set()
        return StageOutput((), {})

    def evaluating(ctx):
        return StageOutput((), {"seen": ctx.inputs["lowering"].data["programs"]})

    out = run_stages((Stage("lowering", "-", (), _settings, lowering, background=True),
                      Stage("converting", "-", (), _settings, converting),
                      Stage("evaluating", "-", ("lowering",), _settings, evaluating)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["lowering", "converting", "evaluating"]  # run order
    assert manifest["stages"][2]["data"]["seen"] == 2 and "failed_stage" not in manifest


def test_a_failing_background_stage_fails_the_run_and_leaves_nothing_in_the_cache(run_stages, tmp_path):
    def lowering(ctx):
        (ctx.out_dir / "half.pte").write_bytes(b"\0")
        raise RuntimeError("lowering exploded")

    def converting(ctx):
        return StageOutput((), {})

    def evaluating(ctx):
        raise AssertionError("a stage that needs a failed stage must not run")

    with pytest.raises(StageCrash) as info:
        run_stages((Stage("lowering", "-", (), _settings, lowering, background=True),
                    Stage("converting", "-", (), _settings, converting),
                    Stage("evaluating", "-", ("lowering",), _settings, evaluating)))
    assert info.value.stage == "lowering" and "lowering exploded" in str(info.value.__cause__)
    manifest = json.loads(next(tmp_path.glob("runs/*/manifest.json")).read_text())
    assert manifest["failed_stage"] == "lowering"
    assert [s["name"] for s in manifest["stages"]] == ["converting"]
    assert not list(tmp_path.glob("cache/lowering/**/half.pte"))
