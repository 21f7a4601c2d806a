"""compute.threads = 0: the training loop's thread count follows what it measures. The step times here are given,
so each case is exact: a quiet machine (2 threads faster), a loaded one (2 threads collapse), load that comes
mid-run, and the off switch."""

from __future__ import annotations

import pytest
import torch

from pipeline.training import thread_tuner
from pipeline.training.thread_tuner import ThreadTuner


@pytest.fixture
def auto():
    before = torch.get_num_threads()
    thread_tuner.enable(2)
    yield
    thread_tuner.disable()
    torch.set_num_threads(before)


def _drive(tuner: ThreadTuner, seconds_on, steps: int) -> list[int]:
    """Run `steps` steps whose time depends on the thread count torch is set to; returns the counts used."""
    used = []
    for i in range(steps):
        n = torch.get_num_threads()
        used.append(n)
        tuner.step_done(seconds_on(n, i))
    return used


def test_a_quiet_machine_moves_to_every_core(auto):
    tuner = ThreadTuner(every=10, first=6)
    used = _drive(tuner, lambda n, i: 0.10 if n == 1 else 0.056, 60)
    assert used[:6] == [1] * 6  # the first probe comes early: 3 steps on 2 threads, then it stays there
    assert used[6:9] == [2] * 3 and tuner.summary()["thread_switches"][0] == [9, 2]
    assert used[-30:].count(2) >= 28  # a probe of one thread now and then, one step each
    assert tuner.summary()["threads_last"] == 2


def test_a_loaded_machine_stays_on_one_thread_and_a_collapsing_probe_costs_one_step(auto):
    tuner = ThreadTuner(every=10)
    used = _drive(tuner, lambda n, i: 0.10 if n == 1 else 1.0, 200)
    assert used.count(2) <= 4  # one step per probe: the first slow step ends it; lost probes space out
    assert tuner.summary()["threads_last"] == 1


def test_load_that_comes_mid_run_sends_training_back_to_one_thread(auto):
    tuner = ThreadTuner(every=10)
    used = _drive(tuner, lambda n, i: (0.10 if n == 1 else 0.056) if i < 50 else (0.12 if n == 1 else 1.0), 100)
    assert used[40:50].count(2) >= 9
    assert used[55:60] == [1] * 5  # three slow steps, one probe step, then one thread
    assert used[-30:].count(1) >= 28
    assert [t for _, t in tuner.summary()["thread_switches"]] == [2, 1]


def test_off_keeps_the_runners_count():
    thread_tuner.disable()
    torch.set_num_threads(1)
    tuner = ThreadTuner(every=5)
    used = _drive(tuner, lambda n, i: 1.0 if n == 1 else 0.01, 50)
    assert used == [1] * 50
