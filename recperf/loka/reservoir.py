"""A uniform sample of rows from a stream of batches (Vitter's Algorithm R).

After n rows were offered, each of them is in the reservoir with probability size / n,
independently of how the stream was cut into batches. The decisions come from a seeded
numpy generator, so a probe run is reproducible; kept rows are copied to the CPU (the
replay runs there, and the reservoir must not hold device memory).
"""

from __future__ import annotations

import numpy as np
import torch


class Reservoir:
    def __init__(self, size: int, features: int, seed: int = 0) -> None:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an int >= 0, got {size!r}")
        self.size = size
        self.seen = 0
        self.rows = torch.empty(size, features)
        self._rng = np.random.default_rng(seed)

    @property
    def filled(self) -> int:
        return min(self.seen, self.size)

    def sample(self) -> torch.Tensor:
        """The kept rows [filled, features] (a copy)."""
        return self.rows[: self.filled].clone()

    def offer(self, batch: torch.Tensor) -> None:
        """Offers every row of batch [rows, features] in order."""
        m = batch.shape[0]
        if self.size == 0 or m == 0:
            self.seen += m
            return
        position = self.seen + np.arange(m)  # each row's index in the whole stream
        slot = np.where(
            position < self.size,
            position,
            np.floor(self._rng.random(m) * (position + 1)).astype(np.int64),
        )
        keep = np.flatnonzero(slot < self.size)
        # Later rows overwrite earlier ones in the same slot, as in the sequential
        # algorithm: keep the last row that claims each slot.
        last = {int(slot[i]): int(i) for i in keep}
        if last:
            slots = torch.tensor(list(last.keys()))
            rows = torch.tensor(list(last.values()), device=batch.device)
            self.rows[slots] = batch.index_select(0, rows).detach().float().cpu()
        self.seen += m
