"""Training steps for ``recperf probe`` and the overhead measurement: Adam on a
Workload's loss, one batch per step."""

from __future__ import annotations

import time

import torch

from recperf.loka.models import Workload


def train(work: Workload, steps: int, lr: float = 1e-3, offset: int = 0) -> list[float]:
    """Runs ``steps`` steps; returns each step's wall-clock seconds."""
    opt = torch.optim.Adam(work.model.parameters(), lr=lr)
    seconds = []
    for batch in work.batches(steps, offset):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        work.loss(work.model, batch).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    return seconds


@torch.no_grad()
def outputs(work: Workload, steps: int, offset: int) -> list[torch.Tensor]:
    """The model's outputs on ``steps`` held-out batches (offset away from training)."""
    return [
        work.model(batch[0] if isinstance(batch, tuple) else batch)
        for batch in work.batches(steps, offset)
    ]
