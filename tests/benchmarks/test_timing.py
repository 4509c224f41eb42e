"""The CPU timer takes a case's variants in turns, and the runner keeps a variant that
fails from taking the others down (no timings asserted: only who ran, how often, in what
order)."""

from __future__ import annotations

import torch

from recperf.benchmarks.fm_cases import FMCase, FMShape
from recperf.benchmarks.roofline import Ceilings
from recperf.benchmarks.runner import run_case
from recperf.benchmarks.timing import time_cpu_in_turns


def test_variants_are_timed_in_rotating_turns():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    timings = time_cpu_in_turns(fns, repeats=3, warmup=1)
    assert calls == [*"abc", *"abc", *"bca", *"cab"]
    assert {name: t.runs for name, t in timings.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t.p25_s <= t.median_s <= t.p75_s for t in timings.values())


class FailsWhenTimed(FMCase):
    """cpp passes the runner's no-grad error check, then fails once timed (grad on)."""

    def op_fn(self, backend):
        fn = super().op_fn(backend)
        if backend != "cpp":
            return fn

        def fails_with_grad(t):
            if torch.is_grad_enabled():
                raise RuntimeError("boom")
            return fn(t)

        return fails_with_grad


def test_a_variant_that_fails_when_timed_is_reported_alone():
    case = FailsWhenTimed("fm_projected", FMShape(3, 5, 7, 2), torch.float32, "fwd")
    ceilings = Ceilings("test", 1e10, 1e11, 1e11, "made up for the test")
    rows = {r.variant: r for r in run_case(case, torch.device("cpu"), ceilings, False, 2)}
    assert rows["cpp"].error == "RuntimeError: boom" and rows["cpp"].median_ms is None
    assert rows["eager"].error is None and rows["eager"].median_ms > 0
    assert rows["torch"].speedup_vs_eager > 0
