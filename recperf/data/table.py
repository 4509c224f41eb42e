"""``CTRData``: a data set held as numpy columns (one id per sparse feature and row),
with its feature spec; it cuts ``Batch``es, splits, and iterates in a seeded order."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from recperf.models.batch import Batch, FeatureSpec


@dataclass
class CTRData:
    """Rows of a CTR data set.

    dense [N, num_dense] float32 (finite); sparse [N, num_sparse] int64 ids; labels [N]
    float32 in {0, 1}; seq_ids[s] [N, T_s] int64 right-padded with 0 and seq_lengths[s]
    [N] in [1, T_s]; prob [N]: the true click probability (synthetic data only);
    report: what the loader did (rows, missing values replaced, empty sequences, ...).
    """

    spec: FeatureSpec
    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray
    seq_ids: tuple[np.ndarray, ...] = ()
    seq_lengths: tuple[np.ndarray, ...] = ()
    prob: np.ndarray | None = None
    report: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray | slice) -> Batch:
        """The rows at ``index`` as a Batch (one id per bag)."""
        sparse = torch.from_numpy(np.ascontiguousarray(self.sparse[index]))
        B = sparse.shape[0]
        offsets = torch.arange(B, dtype=torch.int64)
        return Batch(
            torch.from_numpy(np.ascontiguousarray(self.dense[index])),
            tuple(sparse[:, f].contiguous() for f in range(sparse.shape[1])),
            tuple(offsets for _ in range(sparse.shape[1])),
            torch.from_numpy(np.ascontiguousarray(self.labels[index])),
            tuple(torch.from_numpy(np.ascontiguousarray(s[index])) for s in self.seq_ids),
            tuple(torch.from_numpy(np.ascontiguousarray(s[index])) for s in self.seq_lengths),
        )

    def subset(self, index: np.ndarray) -> CTRData:
        return replace(
            self,
            dense=self.dense[index],
            sparse=self.sparse[index],
            labels=self.labels[index],
            seq_ids=tuple(s[index] for s in self.seq_ids),
            seq_lengths=tuple(s[index] for s in self.seq_lengths),
            prob=None if self.prob is None else self.prob[index],
            report=_subset_report(self.report, index),
        )

    def split(self, test_fraction: float, seed: int = 0) -> tuple[CTRData, CTRData]:
        """(train, test), rows assigned at random (seeded)."""
        if not _real(test_fraction) or not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
        check_seed(seed)
        order = np.random.default_rng(seed).permutation(len(self))
        n_test = max(1, round(len(self) * test_fraction))
        return self.subset(np.sort(order[n_test:])), self.subset(np.sort(order[:n_test]))

    def order(self, epoch: int, seed: int) -> np.ndarray:
        """The row order of an epoch: a function of (seed, epoch) only, so a resumed run
        sees the batches it would have seen."""
        return np.random.default_rng([seed, epoch]).permutation(len(self))

    def batches(self, batch_size: int, start_step: int = 0, seed: int = 0) -> Iterator[Batch]:
        """Training batches forever from step ``start_step``: epochs of shuffled rows, a
        short last batch dropped (the first one kept when the data set is smaller)."""
        _check_batch_size(batch_size)  # here, not at the first next()
        return self._batches(batch_size, start_step, seed)

    def _batches(self, batch_size: int, start_step: int, seed: int) -> Iterator[Batch]:
        per_epoch = max(1, len(self) // batch_size)
        step, order = start_step, (None, None)
        while True:
            epoch, i = divmod(step, per_epoch)
            if order[0] != epoch:  # a permutation of a million rows costs about a Wukong step
                order = (epoch, self.order(epoch, seed))
            yield self.batch(np.sort(order[1][i * batch_size : (i + 1) * batch_size]))
            step += 1

    def kjt_batches(self, batch_size: int, start_step: int = 0, seed: int = 0) -> Iterator:
        """``batches`` as torchrec ``Batch``es, KeyedJaggedTensor sparse features (needs
        ``make install-torchrec``; recperf.torchrec.kjt)."""
        from recperf.torchrec.kjt import kjt_batches

        return kjt_batches(self, batch_size, start_step, seed)

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        _check_batch_size(batch_size)
        return (
            self.batch(slice(start, start + batch_size))
            for start in range(0, len(self), batch_size)
        )


def _real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size}")


def _subset_report(report: dict, index: np.ndarray) -> dict:
    """The report of a subset: per-row arrays (the synthetic logit's parts) indexed too."""
    out = dict(report)
    if "parts" in out:
        out["parts"] = {k: v[index] for k, v in out["parts"].items()}
    out["rows"] = len(index)
    return out
