"""The |x| quantile sketch answers within its stated relative bound, merged or not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recperf.loka.sketch import LogSketch

QS = (0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0)


def exact(values: np.ndarray, q: float) -> float:
    s = np.sort(np.abs(values))
    return float(s[math.floor(q * (len(s) - 1))])


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.01, 0.05]),
    st.integers(1, 4),
    st.sampled_from(["normal", "lognormal", "cauchy", "zeros"]),
)
def test_quantiles_within_the_bound_after_merging(seed, alpha, parts, kind):
    rng = np.random.default_rng(seed)
    draws = {
        "normal": lambda n: rng.normal(0, 1, n),
        "lognormal": lambda n: rng.lognormal(0, 4, n),  # ~1e-7 .. 1e7
        "cauchy": lambda n: rng.standard_cauchy(n),
        "zeros": lambda n: np.where(rng.random(n) < 0.3, 0.0, rng.normal(0, 5, n)),
    }
    chunks = [draws[kind](int(rng.integers(1, 3000))).astype(np.float32) for _ in range(parts)]
    sketches = []
    for chunk in chunks:
        s = LogSketch(alpha)
        s.update(torch.from_numpy(chunk))
        sketches.append(s)
    merged = sketches[0]
    for s in sketches[1:]:
        merged = merged.merge(s)
    values = np.concatenate(chunks).astype(np.float64)
    assert merged.count == len(values)
    for q in QS:
        true = exact(values, q)
        got = merged.quantile(q)
        if true < merged.lo:  # underflow bucket: absolute error under lo
            assert got == 0.0
            continue
        assert abs(got - true) <= (alpha + 1e-5) * true, (q, got, true)


def test_empty_and_overflow():
    s = LogSketch(0.01, lo=1e-3, hi=1e3)
    assert s.quantile(0.5) == 0.0
    s.update(torch.tensor([1e-6, 1.0, 1e9]))
    assert s.quantile(0.0) == 0.0
    assert s.quantile(1.0) == 1e3  # over hi: answered with hi (amax is kept exactly elsewhere)
    assert abs(s.quantile(0.5) - 1.0) <= 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\), got 0"):
        LogSketch(0)
    with pytest.raises(ValueError, match="lo and hi must satisfy 0 < lo < hi"):
        LogSketch(0.01, lo=2.0, hi=1.0)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\], got 1.5"):
        LogSketch().quantile(1.5)
    with pytest.raises(ValueError, match="same alpha, lo and hi"):
        LogSketch(0.01).merge(LogSketch(0.02))
