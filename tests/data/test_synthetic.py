"""The synthetic CTR generator: its documented defaults, its Bayes AUC, its planted
structure, determinism and config validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recperf.data.synthetic import (
    SyntheticConfig,
    cardinalities,
    expected_auc,
    feature_spec,
    generate,
)
from recperf.train.metrics import auc

ROWS = 60_000


@pytest.fixture(scope="module")
def data():
    return generate(dataclasses.replace(SyntheticConfig(), rows=ROWS, seed=3))


def test_defaults_match_the_issue():
    c = SyntheticConfig()
    cards = cardinalities(c)
    assert (c.num_dense, c.num_sparse) == (13, 26)
    assert min(cards) == 10 and max(cards) >= 5_000
    assert cards == sorted(cards) and len(set(cards)) == 26  # spread, not clumped
    assert 15 <= c.pairs <= 25 and 3 <= c.triples <= 7
    assert 0.75 <= c.bayes_auc <= 0.85
    assert c.sequence_length > 0 and c.latent_dim >= 1
    spec = feature_spec(c)
    assert spec.num_dense == 13 and spec.cardinalities == tuple(cards)
    assert spec.sequences[0].vocab == c.sequence_vocab


def test_shapes_ranges_and_labels(data):
    c = SyntheticConfig()
    assert data.dense.shape == (ROWS, 13) and data.dense.dtype == np.float32
    assert data.sparse.shape == (ROWS, 26) and data.sparse.dtype == np.int64
    assert np.all(data.sparse >= 0)
    assert np.all(data.sparse < np.array(cardinalities(c))[None, :])
    assert set(np.unique(data.labels)) <= {0.0, 1.0}
    assert np.all((data.prob > 0) & (data.prob < 1))
    ids, lengths = data.seq_ids[0], data.seq_lengths[0]
    assert ids.shape == (ROWS, c.sequence_length)
    assert lengths.min() >= 1 and lengths.max() <= c.sequence_length
    mask = np.arange(c.sequence_length)[None, :] < lengths[:, None]
    assert np.all(ids[mask] >= 1) and np.all(ids[mask] < c.sequence_vocab)
    assert np.all(ids[~mask] == 0)  # right-padded with the reserved id


def test_bayes_auc_is_calibrated_and_is_the_expected_auc_of_the_probabilities(data):
    bayes = data.report["bayes_auc"]
    assert 0.75 <= bayes <= 0.85
    assert bayes == pytest.approx(SyntheticConfig().bayes_auc, abs=0.01)
    assert bayes == pytest.approx(expected_auc(data.prob.astype(np.float64)), abs=1e-4)
    # The labels agree: the true probabilities' AUC on the drawn labels is close to it.
    assert auc(data.labels, data.prob) == pytest.approx(bayes, abs=0.01)
    assert data.labels.mean() == pytest.approx(SyntheticConfig().click_rate, abs=0.01)


def test_expected_auc_matches_sampling():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 1.5, size=2_000)
    p[:500] = 0.3  # ties count half
    draws = [auc(rng.random(p.size) < p, p) for _ in range(300)]
    assert expected_auc(p) == pytest.approx(np.mean(draws), abs=0.003)
    assert expected_auc(np.full(10, 0.4)) == pytest.approx(0.5)


def test_value_frequencies_are_zipf_like(data):
    cards = cardinalities(SyntheticConfig())
    for f in (len(cards) - 1, len(cards) // 2):
        counts = np.sort(np.bincount(data.sparse[:, f], minlength=cards[f]))[::-1]
        top = counts[:50].astype(np.float64)
        ranks = np.arange(1, 51)
        slope = np.polyfit(np.log(ranks), np.log(top), 1)[0]
        assert abs(slope + SyntheticConfig().zipf_exponent) < 0.3, f"feature {f}: slope {slope:.2f}"
        assert counts[0] > 20 * counts[49]  # a head and a long tail


def test_determinism_by_seed():
    c = SyntheticConfig(rows=3_000, seed=7)
    a, b = generate(c), generate(c)
    for x, y in [(a.dense, b.dense), (a.sparse, b.sparse), (a.labels, b.labels), (a.prob, b.prob)]:
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.seq_ids[0], b.seq_ids[0])
    assert a.report["planted"] == b.report["planted"]
    other = generate(dataclasses.replace(c, seed=8))
    assert not np.array_equal(a.sparse, other.sparse)


def test_planted_structure_is_reported(data):
    c = SyntheticConfig()
    planted = data.report["planted"]
    assert len(planted.pairs) == c.pairs and len(set(planted.pairs)) == c.pairs
    assert len(planted.triples) == c.triples
    for group in (*planted.pairs, *planted.triples):
        assert len(set(group)) == len(group)
        assert all(0 <= f < c.interaction_features for f in group)
    assert planted.scale > 0
    parts = data.report["parts"]
    assert set(parts) == {"first", "pair", "triple", "sequence"}
    # The logit is the shares-weighted sum of the unit-variance parts.
    shares = np.array(c.shares) / np.sum(c.shares)
    mix = sum(np.sqrt(s) * parts[k] for s, k in zip(shares, parts, strict=True))
    logit = planted.scale * mix + planted.bias
    p = data.prob.astype(np.float64)
    np.testing.assert_allclose(logit, np.log(p / (1 - p)), atol=2e-3)
    for k, part in parts.items():
        assert part.std() == pytest.approx(1.0, abs=0.05), k
        assert auc(data.labels, part) > 0.55, k  # every part moves the label


def test_pair_interactions_have_no_first_order_part(data):
    """A planted pair's latents are centred: the mean of the pair term given one of its
    features' values is ~0, so a linear model cannot pick it up."""
    a, _ = data.report["planted"].pairs[0]
    pair = data.report["parts"]["pair"]
    ids = data.sparse[:, a]
    counts = np.bincount(ids)
    means = np.bincount(ids, weights=pair) / np.maximum(counts, 1)
    frequent = counts > 2_000
    assert np.abs(means[frequent]).max() < 0.1


def test_the_label_depends_on_the_sequence(data):
    c = SyntheticConfig()
    seq = data.report["parts"]["sequence"]
    assert auc(data.labels, seq) > 0.55
    # Among rows with the same value of the target feature the term still varies: it is
    # the history that moves it.
    target = data.sparse[:, c.sequence_target]
    same = target == np.bincount(target).argmax()
    assert seq[same].std() > 0.3
    without = generate(dataclasses.replace(c, rows=2_000, sequence_length=0))
    assert without.seq_ids == () and np.all(without.report["parts"]["sequence"] == 0)
    assert feature_spec(dataclasses.replace(c, sequence_length=0)).sequences == ()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"rows": 0}, "rows"),
        ({"num_sparse": 1}, "num_sparse"),
        ({"min_cardinality": 1}, "min_cardinality"),
        ({"bayes_auc": 0.5}, "bayes_auc"),
        ({"bayes_auc": 1.0}, "bayes_auc"),
        ({"click_rate": 0.0}, "click_rate"),
        ({"sequence_target": 26}, "sequence_target"),
        ({"sequence_target": -1}, "sequence_target"),
        ({"max_cardinality": 5}, "max_cardinality"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"zipf_exponent": 0.0}, "zipf_exponent"),
        ({"tail_shrinkage": -1.0}, "tail_shrinkage"),
        ({"interaction_features": 1}, "interaction_features"),
        ({"interaction_features": 27}, "interaction_features"),
        ({"interaction_features": 5, "pairs": 11}, "pairs"),
        ({"interaction_features": 2, "pairs": 1}, "triples"),
        ({"shares": (0.5, 0.5, 0.0)}, "shares"),
        ({"shares": (1.0, -0.5, 0.0, 0.0)}, "shares"),
        ({"sequence_length": -1}, "sequence_length"),
        ({"sequence_vocab": 1}, "sequence_vocab"),
    ],
)
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**overrides)
