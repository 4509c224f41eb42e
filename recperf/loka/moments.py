"""Per-feature running moments (count, mean, M2, M3, M4) merged batch by batch.

Each sampled batch is reduced on its own (a two-pass mean and centred sums, stable in
fp32), then merged into the running state with Chan et al.'s pairwise update, extended to
the third and fourth moments by Pébay (2008). Merging is exact in exact arithmetic: the
merged state equals the moments of the concatenated batches, whatever the batch sizes.
Counts are Python ints (exact); the moment vectors are fp32 on the data's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Moments:
    """Moments of each column of a stream of [rows, features] batches.

    mean [F]; m2, m3, m4 [F]: sums of centred powers (var = m2 / count)."""

    count: int
    mean: torch.Tensor
    m2: torch.Tensor
    m3: torch.Tensor
    m4: torch.Tensor

    @classmethod
    def empty(cls, features: int, device: torch.device | str = "cpu") -> Moments:
        zeros = [torch.zeros(features, device=device) for _ in range(4)]
        return cls(0, *zeros)

    @classmethod
    def of_batch(cls, x: torch.Tensor) -> Moments:
        """The moments of the columns of x [rows, features] (computed in fp32)."""
        if x.dim() != 2:
            raise ValueError(f"x must have shape [rows, features], got {tuple(x.shape)}")
        x = x.float()
        if x.shape[0] == 0:
            return cls.empty(x.shape[1], x.device)
        mean = x.mean(0)
        d = x - mean
        d2 = d * d
        return cls(x.shape[0], mean, d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0))

    def merge(self, other: Moments) -> Moments:
        """The moments of both streams together (Chan / Pébay pairwise update)."""
        if self.mean.shape != other.mean.shape:
            raise ValueError(
                f"other must have {self.mean.shape[0]} features, got {other.mean.shape[0]}"
            )
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        na, nb = float(self.count), float(other.count)
        n = na + nb
        delta = other.mean - self.mean
        d_n = delta / n
        mean = self.mean + d_n * nb
        m2 = self.m2 + other.m2 + delta * d_n * na * nb
        m3 = (
            self.m3
            + other.m3
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * other.m3 - nb * self.m3)
        )
        return Moments(self.count + other.count, mean, m2, m3, m4)

    @property
    def var(self) -> torch.Tensor:
        """Population variance of each feature (0 before any row)."""
        return self.m2 / max(self.count, 1)

    @property
    def excess_kurtosis(self) -> torch.Tensor:
        """count * m4 / m2^2 - 3 per feature: 0 for a Gaussian, large for heavy tails;
        0 for a constant feature (no spread, no tail)."""
        m2 = self.m2.double()
        k = self.count * self.m4.double() / (m2 * m2) - 3.0
        return torch.where(m2 > 0, k, torch.zeros_like(k)).float()

    def pooled(self) -> Moments:
        """The moments of all elements together, as one feature [1]. Every feature has
        the same count n, so with d_f = mean_f - mean (expanding (x - mean_f + d_f)^p,
        whose first centred sum vanishes): M2 = sum m2_f + n sum d_f^2, M3 = sum m3_f +
        3 sum d_f m2_f + n sum d_f^3, M4 = sum m4_f + 4 sum d_f m3_f + 6 sum d_f^2 m2_f +
        n sum d_f^4. Summed in float64."""
        n = float(self.count)
        mean_f, m2, m3, m4 = (t.double() for t in (self.mean, self.m2, self.m3, self.m4))
        mean = mean_f.mean() if mean_f.numel() else mean_f.new_zeros(())
        d = mean_f - mean
        p2 = m2.sum() + n * (d**2).sum()
        p3 = m3.sum() + 3 * (d * m2).sum() + n * (d**3).sum()
        p4 = m4.sum() + 4 * (d * m3).sum() + 6 * (d * d * m2).sum() + n * (d**4).sum()
        stats = (mean, p2, p3, p4)
        return Moments(self.count * mean_f.numel(), *(t.reshape(1).float() for t in stats))
