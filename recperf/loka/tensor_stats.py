"""Running statistics of one tensor role of one layer (its inputs, weights or output
gradients), seen as [rows, features] batches.

Rows holding a NaN or an inf are counted (NaN and inf apart) and left out of every
statistic, so one bad value cannot poison the moments; a non-zero count is what marks
the layer as never safe. Everything else is fp32 on the data's device: moments per
feature (recperf.loka.moments), amax per feature, the |x| quantile sketch
(recperf.loka.sketch), outlier counts per feature, and a reservoir of real rows.

Outliers: elements with |x - mean| > k * std, mean and std of the whole sampled batch
(all features together). A Gaussian puts 2e-9 of its mass past 6 std, so with the
default k = 6 any visible fraction means heavy tails or a channel of much larger scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recperf.loka.moments import Moments
from recperf.loka.reservoir import Reservoir
from recperf.loka.sketch import LogSketch

QUANTILES = (0.5, 0.99, 0.999, 0.9999)


@dataclass(frozen=True)
class StatsSummary:
    """What the report and the replay read: JSON-ready numbers."""

    rows: int
    features: int
    nan: int
    inf: int
    amax: float
    mean: float
    std: float
    excess_kurtosis: float  # of all elements pooled
    max_feature_kurtosis: float
    quantiles: dict[str, float]  # "p50", "p99", ... of |x|, within the sketch's alpha
    outlier_fraction: float
    outlier_k: float

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class TensorStats:
    def __init__(
        self,
        features: int,
        reservoir: int = 256,
        outlier_k: float = 6.0,
        sketch_alpha: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.features = features
        self.outlier_k = outlier_k
        self.moments: Moments | None = None
        self.feature_amax: torch.Tensor | None = None
        self.outliers: torch.Tensor | None = None  # count per feature
        self.sketch: LogSketch | None = None
        self._sketch_alpha = sketch_alpha
        self.reservoir = Reservoir(reservoir, features, seed)
        self.nan = 0
        self.inf = 0
        self.dropped_rows = 0
        self.dtype: torch.dtype | None = None  # of the tensors seen (the model's dtype)

    def update(self, x: torch.Tensor) -> None:
        """Adds the rows of x [rows, features] (any float dtype; reduced in fp32)."""
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have shape [rows, {self.features}], got {tuple(x.shape)}")
        self.dtype = x.dtype
        x = x.detach().float()
        if self.moments is None:
            self._allocate(x.device)
        batch = Moments.of_batch(x)
        # A NaN or inf makes its feature's mean non-finite: checking the [F] means costs
        # one host sync (on sampled steps only) instead of a pass over x.
        if not bool(torch.isfinite(batch.mean).all()):
            x = self._drop_nonfinite(x)
            batch = Moments.of_batch(x)
        if x.shape[0] == 0:
            return
        self.moments = self.moments.merge(batch)
        a = x.abs()
        self.feature_amax = torch.maximum(self.feature_amax, a.amax(0))
        whole = batch.pooled()  # the batch's mean and std from its per-feature moments
        spread = self.outlier_k * whole.var.sqrt()
        self.outliers += ((x > whole.mean + spread) | (x < whole.mean - spread)).sum(0)
        self.sketch.update(a)
        self.reservoir.offer(x)

    def _drop_nonfinite(self, x: torch.Tensor) -> torch.Tensor:
        """Counts NaN and inf, and returns the rows without any."""
        finite = torch.isfinite(x)
        self.nan += int(torch.isnan(x).sum())
        self.inf += int(torch.isinf(x).sum())
        good = finite.all(1)
        self.dropped_rows += int((~good).sum())
        return x[good]

    def _allocate(self, device: torch.device) -> None:
        self.moments = Moments.empty(self.features, device)
        self.feature_amax = torch.zeros(self.features, device=device)
        self.outliers = torch.zeros(self.features, dtype=torch.int64, device=device)
        self.sketch = LogSketch(self._sketch_alpha, device=device)

    @property
    def rows(self) -> int:
        return self.moments.count if self.moments is not None else 0

    def feature_outlier_fraction(self) -> torch.Tensor:
        """[features]: the fraction of each feature's elements that were outliers."""
        if self.rows == 0:
            return torch.zeros(self.features)
        return self.outliers.float().cpu() / self.rows

    def summary(self) -> StatsSummary:
        if self.rows == 0:
            nothing = {f"p{_pct(q)}": 0.0 for q in QUANTILES}
            zero = dict.fromkeys(("amax", "mean", "std", "excess_kurtosis"), 0.0)
            return StatsSummary(
                rows=0,
                features=self.features,
                nan=self.nan,
                inf=self.inf,
                **zero,
                max_feature_kurtosis=0.0,
                quantiles=nothing,
                outlier_fraction=0.0,
                outlier_k=self.outlier_k,
            )
        pooled = self.moments.pooled()
        return StatsSummary(
            rows=self.rows,
            features=self.features,
            nan=self.nan,
            inf=self.inf,
            amax=float(self.feature_amax.max()),
            mean=float(pooled.mean[0]),
            std=float(pooled.var[0].sqrt()),
            excess_kurtosis=float(pooled.excess_kurtosis[0]),
            max_feature_kurtosis=float(self.moments.excess_kurtosis.max()),
            quantiles={f"p{_pct(q)}": self.sketch.quantile(q) for q in QUANTILES},
            outlier_fraction=float(self.outliers.sum()) / (self.rows * self.features),
            outlier_k=self.outlier_k,
        )


def _pct(q: float) -> str:
    return f"{q * 100:g}"
