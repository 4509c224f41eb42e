"""`keep_freed_memory` makes glibc keep freed large blocks for the next allocations: once
warm, a loop that allocates large buffers faults no pages in (glibc's default may map
them afresh each time, or not, as its adaptive thresholds have moved). Run in a fresh
interpreter: the setting lasts for the process."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

_FAULTS_ON_REUSE = """
import resource, sys
import torch
from recperf.benchmarks import allocator
assert allocator.keep_freed_memory()
def touch():  # two 16 MiB buffers alive at once, written page by page (as a bmm + norm)
    a = torch.empty(4 << 20).fill_(1)
    b = torch.empty(4 << 20).fill_(1)
    return a.sum() + b.sum()
for _ in range(8):  # the heap settles in a few rounds (aligned blocks fragment it)
    touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    touch()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def faults_per_reuse() -> float:
    run = subprocess.run(
        [sys.executable, "-c", _FAULTS_ON_REUSE], capture_output=True, text=True, check=True
    )
    return float(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not ctypes.util.find_library("c") or not sys.platform.startswith("linux"),
    reason="glibc's mallopt",
)
def test_warm_loop_reuses_kept_memory_without_page_faults():
    pages = 2 * (16 << 20) // 4096
    # Kept: 0 here, up to 1024 on a loaded CI machine; 3056 when the trim threshold was
    # masked to 0 (every free trimmed).
    assert faults_per_reuse() < pages / 4
