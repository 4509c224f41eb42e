"""A fixed-size, mergeable quantile sketch of |x| with a relative error bound.

Buckets are geometric (as in DDSketch, Masson et al. 2019): with gamma = (1 + alpha) /
(1 - alpha), bucket i holds the magnitudes in (gamma^(i-1), gamma^i], and a quantile is
answered with the bucket's representative 2 gamma^i / (gamma + 1). The answer for rank r
then lies within a relative ``alpha`` of the true r-th smallest |x| (plus fp32 rounding
of the bucket index at a bucket's edge, below 1e-5 relative), whatever the distribution
and however many batches were merged: the sketch keeps counts, never samples.

Magnitudes under about ``lo`` (zeros included) go to an underflow bucket answered as 0
(an absolute error under ``lo``); magnitudes over about ``hi`` to an overflow bucket
answered as ``hi``; the exact running amax is kept beside the sketch (TensorStats).
Non-finite values are never counted here (the probe drops and counts them). One update is
an elementwise log and a bincount, on the data's device.
"""

from __future__ import annotations

import math

import torch


class LogSketch:
    """Counts of |x| in geometric buckets; ``quantile(q)`` within ``alpha`` relative."""

    def __init__(
        self,
        alpha: float = 0.01,
        lo: float = 2.0**-40,
        hi: float = 2.0**40,
        device: torch.device | str = "cpu",
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0 < lo < hi:
            raise ValueError(f"lo and hi must satisfy 0 < lo < hi, got lo={lo!r}, hi={hi!r}")
        self.alpha, self.lo, self.hi = alpha, lo, hi
        self.gamma = (1 + alpha) / (1 - alpha)
        self._log_gamma = math.log(self.gamma)
        self._i_lo = math.ceil(math.log(lo) / self._log_gamma)
        self._i_hi = math.ceil(math.log(hi) / self._log_gamma)
        # slot 0: underflow; slots 1..: buckets i_lo..i_hi; last slot: overflow
        self.counts = torch.zeros(self._i_hi - self._i_lo + 3, dtype=torch.int64, device=device)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def update(self, x: torch.Tensor) -> None:
        """Adds the magnitudes of the (finite) elements of x."""
        a = x.detach().reshape(-1).float().abs().clamp_(self.lo / 2, self.hi * 2)
        # fp32 logs: a magnitude within ~1e-6 relative of a bucket edge may land in the
        # neighbouring bucket, which is the "fp32 rounding" of the bound
        index = torch.ceil(torch.log(a) * (1 / self._log_gamma)).long()
        slot = (index - (self._i_lo - 1)).clamp_(0, self.counts.numel() - 1)
        self.counts += torch.bincount(slot, minlength=self.counts.numel())

    def merge(self, other: LogSketch) -> LogSketch:
        if (other.alpha, other.lo, other.hi) != (self.alpha, self.lo, self.hi):
            raise ValueError("other must have the same alpha, lo and hi as this sketch")
        merged = LogSketch(self.alpha, self.lo, self.hi, self.counts.device)
        merged.counts = self.counts + other.counts.to(self.counts.device)
        return merged

    def quantile(self, q: float) -> float:
        """The q-quantile of |x|: the value at rank floor(q * (count - 1)) of the sorted
        magnitudes, within ``alpha`` relative (0 if nothing was added)."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        total = self.count
        if total == 0:
            return 0.0
        rank = math.floor(q * (total - 1))
        cumulative = torch.cumsum(self.counts, 0)
        slot = int(
            torch.searchsorted(cumulative, torch.tensor(rank, device=cumulative.device), right=True)
        )
        if slot == 0:
            return 0.0
        if slot == self.counts.numel() - 1:
            return self.hi
        i = slot - 1 + self._i_lo
        return 2 * self.gamma**i / (self.gamma + 1)
