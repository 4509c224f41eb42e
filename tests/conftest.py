"""Shared test set-up.

Without a GPU, Triton kernels run on CPU tensors under Triton's interpreter: it must be
switched on before any Triton kernel is defined, hence here, before recperf is imported.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

import recperf  # noqa: F401  registers the ops
from recperf.ops.backends import triton_interpreted, triton_missing

HAS_CUDA = torch.cuda.is_available()


def cpu_backends() -> list[str]:
    """The backends that run CPU tensors here (Triton through its interpreter)."""
    names = ["torch", "cpp"]
    if triton_missing() is None and triton_interpreted():
        names.append("triton")
    return names


def gpu_backends() -> list[str]:
    return ["torch", "triton", "cuda"]


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_spec():
    """A feature spec small enough for every model test: 3 dense features, 5 sparse ones
    (cardinalities 1, primes and a tiny one) and one sequence."""
    from recperf.models import FeatureSpec, SequenceSpec

    return FeatureSpec(
        ("d0", "d1", "d2"),
        ("s0", "s1", "s2", "s3", "s4"),
        (7, 11, 13, 3, 29),
        (SequenceSpec("history", 17, 6),),
    )


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: a second OpenMP thread only adds waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
