"""The probe's overhead on a training step: the same model, optimizer and data, with and
without a probe attached, alternating step by step so that whatever else the machine runs
hits both arms alike.

One probed step in ``sample_every`` pays for the statistics; the others pay for a hook
call per layer. With P, U and S the median times of a plain step, an unsampled probed step
and a sampled one, the expected probed step is ((sample_every - 1) U + S) / sample_every,
and the overhead that over P, minus 1. Medians per kind of step keep the number steady on
a shared machine, where a mean over all steps would follow whatever else ran.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from recperf.loka.models import Workload
from recperf.loka.probe import Probe


@dataclass(frozen=True)
class Overhead:
    plain_s: float  # median plain step
    hooked_s: float  # median probed step that took no sample
    sampled_s: float  # median probed step that took a sample
    sample_every: int
    steps: int  # per arm

    @property
    def probed_s(self) -> float:
        n = self.sample_every
        return ((n - 1) * self.hooked_s + self.sampled_s) / n

    @property
    def fraction(self) -> float:
        return self.probed_s / self.plain_s - 1

    def __str__(self) -> str:
        return (
            f"probe overhead {self.fraction * 100:+.1f}% at sample_every={self.sample_every}: "
            f"step {self.plain_s * 1e3:.2f} ms plain, {self.hooked_s * 1e3:.2f} ms hooked, "
            f"{self.sampled_s * 1e3:.2f} ms sampling (medians, {self.steps} steps per arm)"
        )


def measure(
    work: Workload,
    steps: int = 512,
    sample_every: int = Probe.DEFAULT_SAMPLE_EVERY,
    warmup: int = 4,
    **probe_kwargs,
) -> Overhead:
    """Overhead of a Probe over ``steps`` steps per arm, plain and probed alternating
    (after ``warmup`` pairs). Every layer of the workload runs once a step, so probed step
    g samples when g % sample_every == 0."""
    if steps < sample_every:
        raise ValueError(f"steps must be >= sample_every={sample_every}, got {steps}")
    opt = torch.optim.Adam(work.model.parameters(), lr=1e-3)
    probe = Probe(work.model, sample_every=sample_every, **probe_kwargs)
    probe.detach()
    plain, hooked, sampled = [], [], []

    def step(batch) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        work.loss(work.model, batch).backward()
        opt.step()
        return time.perf_counter() - start

    batches = work.batches(2 * (steps + warmup))
    for g in range(-warmup, steps):
        a = step(next(batches))
        probe.attach()
        b = step(next(batches))
        probe.detach()
        if g >= 0:
            plain.append(a)
            (sampled if (g + warmup) % sample_every == 0 else hooked).append(b)
    med = statistics.median
    return Overhead(med(plain), med(hooked), med(sampled), sample_every, len(plain))
