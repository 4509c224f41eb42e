"""Batched Welford (Chan / Pébay) merge against numpy over the concatenated batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recperf.loka.moments import Moments


def numpy_moments(a: np.ndarray):
    mean = a.mean(0)
    d = a - mean
    return mean, (d**2).mean(0), (d**4).mean(0) / np.maximum((d**2).mean(0) ** 2, 1e-300) - 3


batches = st.lists(
    st.tuples(st.integers(0, 9), st.floats(-100, 100), st.floats(0.01, 50)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(batches, st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_merge_equals_numpy_over_concatenated_batches(spec, features, seed):
    rng = np.random.default_rng(seed)
    parts = [
        rng.normal(loc, scale, (rows, features)).astype(np.float32) for rows, loc, scale in spec
    ]
    state = Moments.empty(features)
    for part in parts:
        state = state.merge(Moments.of_batch(torch.from_numpy(part)))
    whole = np.concatenate(parts).astype(np.float64)
    assert state.count == whole.shape[0]
    if whole.shape[0] == 0:
        return
    mean, var, kurt = numpy_moments(whole)
    scale = np.abs(whole).max() + 1e-6
    np.testing.assert_allclose(state.mean.numpy(), mean, atol=1e-5 * scale)
    np.testing.assert_allclose(state.var.numpy(), var, rtol=1e-3, atol=1e-6 * scale**2)
    if whole.shape[0] > 3 and (var > 1e-3 * scale**2).all():
        np.testing.assert_allclose(state.excess_kurtosis.numpy(), kurt, rtol=1e-2, atol=1e-2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_pooled_equals_numpy_over_all_elements(rows, features, seed):
    rng = np.random.default_rng(seed)
    a = (
        rng.standard_t(4, (rows, features)) * rng.uniform(0.1, 10, features)
        + rng.normal(0, 3, features)
    ).astype(np.float32)
    pooled = Moments.of_batch(torch.from_numpy(a)).pooled()
    flat = a.astype(np.float64).reshape(-1, 1)
    mean, var, kurt = numpy_moments(flat)
    assert pooled.count == flat.shape[0]
    np.testing.assert_allclose(pooled.mean.numpy(), mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pooled.var.numpy(), var, rtol=1e-3, atol=1e-5)
    if var[0] > 1e-3:
        np.testing.assert_allclose(pooled.excess_kurtosis.numpy(), kurt, rtol=1e-2, atol=1e-2)


def test_kurtosis_of_a_heavy_tail_is_large_and_of_a_constant_is_zero():
    x = torch.zeros(1000, 2)
    x[0, 0] = 1000.0
    m = Moments.of_batch(x)
    assert m.excess_kurtosis[0] > 900
    assert m.excess_kurtosis[1] == 0


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"x must have shape \[rows, features\], got \(3,\)"):
        Moments.of_batch(torch.zeros(3))
    with pytest.raises(ValueError, match="other must have 2 features, got 3"):
        Moments.empty(2).merge(Moments.empty(3))
