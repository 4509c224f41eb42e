"""recperf.train.metrics against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recperf.train.metrics import auc, evaluate, log_loss, normalized_entropy


def brute_auc(labels, scores) -> float:
    """Every (positive, negative) pair: 1 when the positive scores higher, 1/2 on a tie."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.integers(-3, 3)),  # few score values: many ties
        min_size=2,
        max_size=40,
    ).filter(lambda rows: 0 < sum(y for y, _ in rows) < len(rows))
)
def test_auc_matches_pairwise_count_with_ties(rows):
    labels = np.array([y for y, _ in rows])
    scores = np.array([s for _, s in rows], dtype=np.float64) / 3
    assert auc(labels, scores) == pytest.approx(brute_auc(labels, scores), abs=1e-12)


def test_auc_known_values():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # one positive ties one of two negatives, beats the other: (1 + 1/2) / 2
    assert auc([1, 0, 0], [0.5, 0.5, 0.1]) == 0.75


def test_auc_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(500)
    labels = (rng.random(500) < 1 / (1 + np.exp(-scores))).astype(np.float32)
    assert auc(labels, scores) == pytest.approx(auc(labels, np.exp(3 * scores) + 1))


def test_auc_of_one_class_is_nan():
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(auc([0, 0], [0.1, 0.2]))


def test_log_loss_matches_definition():
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.6, 0.5, 0.99])
    expected = -np.mean(
        [math.log(0.9), math.log(0.8), math.log(0.6), math.log(0.5), math.log(0.99)]
    )
    assert log_loss(y, p) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clips_certain_wrong_predictions():
    value = log_loss([1, 0], [0.0, 1.0])
    assert math.isfinite(value)
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_normalized_entropy_is_one_for_the_click_rate_and_below_for_skill():
    y = np.array([1, 0, 0, 0] * 25)
    assert normalized_entropy(y, np.full(100, 0.25)) == pytest.approx(1.0)
    better = np.where(y == 1, 0.6, 0.15)
    ne = normalized_entropy(y, better)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert ne == pytest.approx(log_loss(y, better) / entropy)
    assert ne < 1
    assert math.isnan(normalized_entropy(np.ones(4), np.full(4, 0.5)))


def test_evaluate_returns_every_metric():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.7, 0.4, 0.6])
    out = evaluate(y, p)
    assert out == {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "ne": normalized_entropy(y, p),
    }
