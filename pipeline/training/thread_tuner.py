"""compute.threads = 0: training steps run on 1 or on every core, whichever is measured faster as training goes.

On this project's 2-core machine a training step of the default model took 1.78x less time on 2 threads than on 1
when the machine was quiet, and up to 10x more when other jobs ran (the threads wait for each other at every
operator). Neither count is right everywhere, and the load changes during a run, so the loop keeps timing: every
`every` steps it tries the other count for a few steps against the median of the recent steps on the current one,
and switches when the other is clearly faster. The first probe comes after `first` steps, since a short run (0.3
epochs of QAT is 140 steps) would otherwise spend 40 of them on one thread. A probe step slower than `abort_ratio`
times that median ends the probe at once, so a collapsing thread pool costs one slow step; each lost probe doubles
the wait before the next (from `every`, up to 8x), and a run of slow steps on the current count starts a probe at
once.
"""

from __future__ import annotations

import os
import statistics

import torch

_AUTO_MAX: int = 0  # 0: off (the runner's fixed thread count stays); else the most threads auto mode tries


def enable(max_threads: int | None = None) -> None:
    """Turn auto mode on for this process (the runner does, for compute.threads = 0); training then tunes."""
    global _AUTO_MAX
    _AUTO_MAX = max(1, max_threads or len(os.sched_getaffinity(0)))
    torch.set_num_threads(1)


def disable() -> None:
    global _AUTO_MAX
    _AUTO_MAX = 0


def enabled() -> bool:
    return _AUTO_MAX > 1


def describe() -> str:
    """How training picks its threads in auto mode ("" when off)."""
    return f"auto: 1 or {_AUTO_MAX}, whichever measures faster" if enabled() else ""


class ThreadTuner:
    """Call `step_done(seconds)` after every training step; it sets torch's thread count for the next one."""

    def __init__(self, every: int = 40, probe: int = 3, gain: float = 0.9, abort_ratio: float = 1.5, first: int = 6):
        self.choices = (1, _AUTO_MAX) if enabled() else (torch.get_num_threads(),)
        self.every, self.probe_len, self.gain, self.abort_ratio = every, probe, gain, abort_ratio
        self.current = self.choices[0]
        self.recent: list[float] = []
        self.probe: list[float] | None = None
        self.wait = max(first, probe)
        self.since = 0
        self.slow = 0  # consecutive steps slower than abort_ratio x the recent median
        self.switches: list[tuple[int, int]] = []  # (step, threads) of every change
        self.steps = 0
        torch.set_num_threads(self.current)

    def _other(self) -> int:
        return next(c for c in self.choices if c != self.current)

    def step_done(self, seconds: float) -> None:
        self.steps += 1
        if len(self.choices) == 1:
            return
        if self.probe is None:
            base = statistics.median(self.recent) if self.recent else seconds
            self.recent = (self.recent + [seconds])[-self.every:]
            self.since += 1
            self.slow = self.slow + 1 if seconds > self.abort_ratio * base else 0
            # probe when due, or at once when the current count has turned slow (load came or went)
            if (self.since >= self.wait or self.slow >= self.probe_len) and len(self.recent) >= self.probe_len:
                if self.slow >= self.probe_len:  # the probe must beat the current count as it is now
                    self.recent = self.recent[-self.probe_len:]
                self.probe = []
                torch.set_num_threads(self._other())
            return
        self.probe.append(seconds)
        base = statistics.median(self.recent)
        if seconds > self.abort_ratio * base or len(self.probe) >= self.probe_len:
            # the first step on a new count pays for waking its threads: judge by the best probe step
            won = len(self.probe) >= self.probe_len and statistics.median(self.probe[1:]) < self.gain * base
            if won:
                self.current = self._other()
                self.switches.append((self.steps, self.current))
                self.recent, self.wait = list(self.probe[1:]), self.every
            else:
                self.wait = min(max(self.wait, self.every) * 2, 8 * self.every)
            torch.set_num_threads(self.current)
            self.probe, self.since, self.slow = None, 0, 0

    def summary(self) -> dict:
        return {"threads_tried": list(self.choices), "threads_last": self.current,
                "thread_switches": [list(s) for s in self.switches]}
