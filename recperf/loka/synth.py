"""Replay tensors drawn from what the probe recorded.

"stats": each feature Gaussian with its recorded mean and variance, then outliers planted
at each feature's recorded outlier fraction, with magnitudes uniform between the outlier
threshold (k std of the whole tensor) and that feature's recorded amax and a random sign,
and finally the recorded amax itself planted once if the draw fell short of it (a
tensor-wise FP8 scale is set by that one element). "reservoir": the real rows kept.
"""

from __future__ import annotations

import torch

from recperf.loka.tensor_stats import TensorStats


def draw_rows(stats: TensorStats, rows: int, generator: torch.Generator) -> torch.Tensor | None:
    """[rows, features] fp32 on the CPU, or None when nothing was recorded."""
    if stats.rows == 0 or rows < 1:
        return None
    F = stats.features
    mean = stats.moments.mean.cpu()
    std = stats.moments.var.cpu().clamp_min(0).sqrt()
    x = mean + std * torch.randn(rows, F, generator=generator)
    summary = stats.summary()
    amax_f = stats.feature_amax.cpu()
    frac = stats.feature_outlier_fraction()
    if bool((frac > 0).any()):
        threshold = summary.outlier_k * summary.std
        planted = torch.rand(rows, F, generator=generator) < frac
        span = (amax_f - threshold).clamp_min(0)
        magnitude = threshold + span * torch.rand(rows, F, generator=generator)
        sign = torch.where(torch.rand(rows, F, generator=generator) < 0.5, -1.0, 1.0)
        x = torch.where(planted, sign * magnitude, x)
    if summary.amax > float(x.abs().max()):
        f = int(amax_f.argmax())
        r = int(torch.randint(rows, (1,), generator=generator))
        sign = 1.0 if float(torch.rand(1, generator=generator)) < 0.5 else -1.0
        x[r, f] = sign * summary.amax
    return x


def reservoir_rows(stats: TensorStats, rows: int | None = None) -> torch.Tensor | None:
    """The first ``rows`` kept rows (all by default), or None when none were kept."""
    kept = stats.reservoir.sample()
    if kept.shape[0] == 0:
        return None
    return kept if rows is None else kept[:rows]


def as_operand(rows: torch.Tensor, groups: int) -> torch.Tensor:
    """[M, C] -> the op's layout: [M, C] as is, or [M, G * c] -> [G, M, c]."""
    if not groups:
        return rows.contiguous()
    M = rows.shape[0]
    return rows.reshape(M, groups, -1).transpose(0, 1).contiguous()
