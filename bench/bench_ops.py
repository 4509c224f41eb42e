"""pytest-benchmark suite over the same case registry as `recperf bench`.

    python -m pytest bench/bench_ops.py --benchmark-only [--benchmark-json out.json]

Each benchmark is one case and variant (a backend, or the eager baseline); extra_info
carries the case's counted bytes and FLOPs, so rates and roofline fractions can be
derived from the saved JSON. Not part of the test suite (its path is outside tests/).
"""

from __future__ import annotations

import pytest
import torch

from recperf.benchmarks import allocator, registry
from recperf.benchmarks.runner import train_step, variants

allocator.keep_freed_memory()  # as `recperf bench` does: time kernels, not page faults
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = registry.default_cases(DEVICE)


def _params():
    for case in CASES:
        for name in variants(case, DEVICE, compile_baseline=False):
            yield pytest.param(case, name, id=f"{case.slug}-{name}")


@pytest.mark.parametrize("case,variant", list(_params()))
def test_fm(benchmark, case, variant):
    fn = variants(case, DEVICE, compile_baseline=False)[variant]
    inputs = case.make_inputs(DEVICE)
    call = train_step(fn) if case.direction == "fwd+bwd" else fn
    work = case.work()
    benchmark.extra_info.update(
        {"bytes": work.bytes, "flops": work.flops, "device": str(DEVICE), "variant": variant}
    )

    def run():
        call(inputs)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
