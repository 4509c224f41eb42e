"""The models ``recperf probe`` can run, with their synthetic data and loss: the LinearNorm
stack (always), and Wukong through recperf.models and recperf.data.synthetic when those
import. This file is the only coupling between LoKA and them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import nn

from recperf.loka.stack import LinearNormStack, Teacher, plant_massive_activation

MODELS = ("stack", "wukong")


@dataclass
class Workload:
    model: nn.Module
    batches: Callable[[int, int], Iterator]  # (steps, offset) -> batches
    loss: Callable[[nn.Module, object], object]  # (model, batch) -> scalar loss


def stack(
    width: int = 256,
    depth: int = 5,
    batch: int = 256,
    seed: int = 0,
    outliers_at: int | None = None,
) -> Workload:
    """The LinearNorm stack; ``outliers_at``: plant a massive input channel in that layer."""
    import torch

    torch.manual_seed(seed)
    model = LinearNormStack((width,) * (depth + 1))
    if outliers_at is not None:
        plant_massive_activation(model, outliers_at)
    teacher = Teacher(width, 8, seed)
    return Workload(
        model, lambda steps, offset=0: teacher.batches(batch, steps, offset), LinearNormStack.loss
    )


def wukong(batch: int = 256, seed: int = 0, rows: int = 20_000) -> Workload:
    """Wukong on the synthetic CTR data set (recperf.models, recperf.data)."""
    try:
        from recperf.data.synthetic import SyntheticConfig, generate
        from recperf.models import build_model
    except Exception as exc:  # being written elsewhere: say so instead of a traceback
        raise ValueError(
            f"--model wukong needs recperf.models and recperf.data.synthetic, which do not "
            f"import here ({type(exc).__name__}: {exc}); use --model stack"
        ) from exc
    import numpy as np
    import torch

    torch.manual_seed(seed)
    data = generate(SyntheticConfig(rows=rows, seed=seed))
    model = build_model("wukong", data.spec)

    def batches(steps: int, offset: int = 0):
        rng = np.random.default_rng(seed + offset)
        for _ in range(steps):
            yield data.batch(rng.integers(0, len(data), batch))

    return Workload(model, batches, lambda m, b: m.loss(b))


def workload(name: str, **kwargs) -> Workload:
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    return stack(**kwargs) if name == "stack" else wukong(**kwargs)
