"""Timers. GPU: CUDA events through triton.testing.do_bench (warm-up, L2 flushed before
every run) over rotating input sets; CPU: wall clock after a warm-up, the variants of a
case taken in turns. Both report the median and the interquartile spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_s: float
    p25_s: float
    p75_s: float
    runs: int


def _summary(seconds: list[float]) -> Timing:
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return Timing(statistics.median(seconds), q[0], q[2], len(seconds))


def time_cpu(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> Timing:
    return time_cpu_in_turns({"": fn}, repeats, warmup)[""]


def time_cpu_in_turns(
    fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1
) -> dict[str, Timing]:
    """Wall clocks of several calls taken in turns: each round times every call once, the
    order rotated from round to round. A shared CPU's speed drifts (neighbours, clocks)
    over a run; in turns the drift lands on every variant alike, so their ratios hold
    where back-to-back blocks of runs would each catch a different phase of it."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: _summary(times) for name, times in seconds.items()}


def time_cuda(fn: Callable[[], object], warmup_ms: int = 25, rep_ms: int = 200) -> Timing:
    from triton.testing import do_bench

    ms = do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return _summary([m / 1e3 for m in ms])


def rotating(fn: Callable[[dict], object], input_sets: list[dict]) -> Callable[[], object]:
    """A call that cycles over input sets, so repeated runs do not hit a warm cache."""
    state = {"i": 0}

    def call():
        inputs = input_sets[state["i"] % len(input_sets)]
        state["i"] += 1
        return fn(inputs)

    return call


def sets_to_exceed(bytes_per_set: float, device: torch.device) -> int:
    """How many input sets make the rotation larger than twice the GPU's L2."""
    if device.type != "cuda":
        return 1
    l2 = torch.cuda.get_device_properties(device).L2_cache_size
    return max(1, min(8, int(2 * l2 // max(bytes_per_set, 1)) + 1))
