"""Replay inputs drawn from the statistics, and the replay of a grouped layer."""

from __future__ import annotations

import math

import pytest
import torch

from recperf.loka.probe import Probe
from recperf.loka.replay import replay
from recperf.loka.synth import as_operand, draw_rows
from recperf.loka.tensor_stats import TensorStats
from recperf.nn import GroupedLinearNorm


def test_draws_follow_each_feature_and_plant_the_recorded_tail():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 4, generator=g) * torch.tensor([1.0, 3.0, 0.1, 1.0])
    x += torch.tensor([0.0, 5.0, -1.0, 0.0])
    x[::100, 3] = 200.0  # 1% of feature 3 is a heavy outlier
    stats = TensorStats(4, reservoir=0)
    stats.update(x)
    drawn = draw_rows(stats, 20000, torch.Generator().manual_seed(1))
    for f in range(3):
        assert drawn[:, f].mean() == pytest.approx(x[:, f].mean().item(), abs=0.05)
        assert drawn[:, f].std() == pytest.approx(x[:, f].std().item(), rel=0.05)
    # outliers only where they were recorded, at about the recorded fraction
    limit = stats.outlier_k * stats.summary().std
    outside = (drawn.abs() > limit).float().mean(0)
    assert outside[:3].max() == 0
    assert outside[3].item() == pytest.approx(0.01, abs=0.003)
    assert drawn.abs().max() == pytest.approx(200.0)  # the recorded amax, planted
    assert draw_rows(TensorStats(4), 8, g) is None  # nothing recorded, nothing drawn


def test_grouped_layout_round_trip():
    rows = torch.arange(24.0).reshape(3, 8)  # M=3 rows of G=2 groups x 4 features
    op = as_operand(rows, 2)
    assert op.shape == (2, 3, 4)
    assert torch.equal(op[1, 2], rows[2, 4:])


def test_grouped_layer_replays_for_a_target():
    torch.manual_seed(0)
    layer = GroupedLinearNorm(3, 16, 8, recipe="fp32")
    with Probe(layer, sample_every=1, reservoir=16) as probe:
        for _ in range(2):
            layer(torch.randn(3, 16, 16)).square().sum().backward()
    report = replay(probe, target="h100", rows=16)
    (result,) = report.layers
    assert result.kind == "grouped_linear_norm" and result.shape.groups == 3
    backends = {c.backend for c in result.candidates}
    assert backends == {"triton", "cuda", "torch"}  # torchao has no grouped kernel
    for c in result.candidates:
        assert set(c.errors_by_source) == {"stats", "reservoir"}
        assert c.error_backend == "cpp"  # the numbers, computed here for the target
        for e in c.errors.values():
            assert math.isfinite(e.rel_fro) and e.rel_fro < (0.01 if c.recipe == "bf16" else 0.2)


def test_bad_arguments():
    layer = GroupedLinearNorm(2, 4, 4)
    probe = Probe(layer)
    with pytest.raises(
        ValueError, match=r"sources must be a non-empty subset of \('stats', 'reservoir'\)"
    ):
        replay(probe, sources=("real",))
    with pytest.raises(ValueError, match="rows must be an int >= 1, got 0"):
        replay(probe, rows=0)
    with pytest.raises(ValueError, match="row_scale must be a number > 0, got -2"):
        replay(probe, row_scale=-2)
    probe.detach()
