"""The one registry of benchmark cases. `recperf bench`, the pytest-benchmark suite
(bench/bench_ops.py) and bench/device_check.sh all take their cases from here, so their
numbers mean the same thing."""

from __future__ import annotations

import importlib

import torch

# Modules with a default_cases(device, quick) function, in the order they run.
CASE_MODULES = (
    "recperf.benchmarks.fm_cases",
    "recperf.benchmarks.linear_norm_cases",
    "recperf.benchmarks.model_cases",
)


def default_cases(device: torch.device, quick: bool = False) -> list:
    cases = []
    for name in CASE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside the module is a real error
                raise
            continue
        cases += module.default_cases(device, quick=quick)
    return cases


def select(cases: list, filters: list[str] | None = None, dtypes: list[str] | None = None) -> list:
    """Cases whose name contains every filter; each case in each wanted dtype, once."""
    if dtypes:
        wanted = [getattr(torch, name) for name in dtypes]
        cases = list(
            {c.with_dtype(dt).name: c.with_dtype(dt) for c in cases for dt in wanted}.values()
        )
    for pattern in filters or []:
        cases = [c for c in cases if pattern in c.name]
    return cases
