"""DMT's tower partitioner: every feature in exactly one tower, loads within the stated
bound, planted feature groups recovered from learned embeddings, same seed same towers."""

from __future__ import annotations

import pytest
import torch

from recperf.distributed.towers import (
    FeatureCost,
    TowerPartition,
    balance_report,
    feature_affinity,
    partition_towers,
)


def planted_embeddings(groups: int, per_group: int, samples=512, dim=16, seed=0):
    """Features of one group share a latent vector per sample (strong |<e_i, e_j>|);
    groups are independent. Features are interleaved: feature f is in group f % groups."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(samples, groups, dim, generator=g)
    F = groups * per_group
    noise = 0.3 * torch.randn(samples, F, dim, generator=g)
    return latent[:, [f % groups for f in range(F)]] + noise


def assert_is_partition(p: TowerPartition, F: int):
    members = sorted(f for tower in p.towers for f in tower)
    assert members == list(range(F)), p.towers
    assert all(len(t) >= 1 for t in p.towers)


def test_recovers_planted_groups_with_equal_costs():
    groups, per = 4, 5
    affinity = feature_affinity(planted_embeddings(groups, per))
    costs = [FeatureCost(embedding_bytes=256)] * (groups * per)
    p = partition_towers(groups, costs, affinity, seed=1)
    assert_is_partition(p, groups * per)
    assert sorted(p.towers) == sorted(tuple(range(g, groups * per, groups)) for g in range(groups))
    report = balance_report(p, costs, affinity)
    # 40 of the 190 pairs are within towers (21% of the affinity if it were uniform); the
    # planted pairs carry most of it.
    assert report.within_bound and report.within_tower_affinity > 0.5
    assert report.bytes_imbalance == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("towers", [2, 3, 7])
def test_uneven_costs_stay_within_the_bound(seed, towers):
    g = torch.Generator().manual_seed(seed)
    F = 40
    dims = torch.randint(1, 9, (F,), generator=g) * 16
    pooling = torch.rand(F, generator=g) * 20 + 1
    costs = [FeatureCost(int(d) * 4, float(q)) for d, q in zip(dims, pooling, strict=True)]
    affinity = feature_affinity(planted_embeddings(5, 8, samples=128, seed=seed))
    p = partition_towers(towers, costs, affinity, seed=seed, slack=0.1)
    assert_is_partition(p, F)
    report = balance_report(p, costs, affinity, slack=0.1)
    assert report.within_bound, str(report)
    assert len(report.load) == towers


def test_same_seed_same_towers_and_seed_matters_only_for_ties():
    costs = [FeatureCost(64, 1 + f % 4) for f in range(24)]
    affinity = feature_affinity(planted_embeddings(3, 8, samples=64))
    a = partition_towers(3, costs, affinity, seed=7)
    b = partition_towers(3, costs, affinity, seed=7)
    assert a == b
    no_affinity = [partition_towers(4, costs, None, seed=s) for s in range(3)]
    for p in no_affinity:
        assert_is_partition(p, 24)
        assert balance_report(p, costs).within_bound


def test_balance_report_text_and_shards():
    costs = [FeatureCost(128, 2.0)] * 6 + [FeatureCost(512, 8.0)] * 2
    p = partition_towers(2, costs, seed=0)
    text = str(balance_report(p, costs))
    assert "max/mean" in text and "capacity" in text
    shards = p.shards(0, 3, costs)
    assert sorted(f for s in shards for f in s) == list(p.towers[0])


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: partition_towers(0, [FeatureCost(4)] * 3), r"num_towers must be in 1..3"),
        (lambda: partition_towers(4, [FeatureCost(4)] * 3), r"num_towers must be in 1..3"),
        (
            lambda: partition_towers(2, [FeatureCost(4)] * 3, torch.zeros(2, 2)),
            r"affinity must be \[3, 3\]",
        ),
        (lambda: partition_towers(2, [FeatureCost(0, 0.0)] * 3), r"positive total"),
        (lambda: feature_affinity(torch.zeros(3, 4)), r"embeddings must be \[N, F, D\]"),
    ],
)
def test_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
