"""The default model of ``recperf probe``: a stack of LinearNorm layers (Linear ->
LayerNorm, then ReLU) and an nn.Linear head, trained to regress a fixed random teacher on
Gaussian inputs. Small, fast on a CPU, and with every kind of layer LoKA plans."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import nn

from recperf.nn import LinearNorm


class LinearNormStack(nn.Module):
    """x [B, widths[0]] -> [LinearNorm(w) -> ReLU] for each next width -> Linear(out)."""

    def __init__(
        self,
        widths: tuple[int, ...] = (256, 256, 256, 256, 256),
        out: int = 8,
        recipe: str = "fp32",
    ) -> None:
        super().__init__()
        if len(widths) < 2 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be two or more positive ints, got {widths!r}")
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [LinearNorm(a, b, recipe=recipe), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def linear_norms(self) -> list[LinearNorm]:
        return [m for m in self.body if isinstance(m, LinearNorm)]


def plant_massive_activation(
    model: LinearNormStack, layer: int, channel: int = 0, scale: float = 1e6
) -> LinearNormStack:
    """Makes input ``channel`` of LinearNorm number ``layer`` (>= 1) ``scale`` times larger
    (the previous layer's norm weight) and that channel's weights ``scale`` times smaller:
    the same function in exact arithmetic (ReLU commutes with a positive scale), but the
    layer's inputs now carry a massive channel, as trained models often do. Scaled by the
    channel's amax, the rest of each row falls under e4m3's normal range (448 / 2^-6 ~
    3e4 below the amax) into its subnormals: at 1e4 row-wise FP8 still holds (~3% error
    measured), at 1e5 it loses ~10%, at 1e6 the rest of the row flushes to zero.
    (An optimizer step undoes the trick: plant after training, or probe with lr=0.)"""
    norms = model.linear_norms()
    if not 1 <= layer < len(norms):
        raise ValueError(f"layer must be in [1, {len(norms) - 1}], got {layer!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    with torch.no_grad():
        norms[layer - 1].norm_weight[channel] *= scale
        norms[layer - 1].norm_bias[channel] *= scale
        norms[layer].weight[:, channel] /= scale
    return model


class Teacher:
    """Batches (x, y): x ~ N(0, 1) [batch, in], y = tanh(x A) B, A and B fixed by seed."""

    def __init__(self, in_features: int, out: int, seed: int = 0, hidden: int = 64) -> None:
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(in_features, hidden, generator=g) / in_features**0.5
        self.b = torch.randn(hidden, out, generator=g) / hidden**0.5
        self.in_features = in_features
        self.seed = seed

    def batches(self, batch: int, steps: int, offset: int = 0) -> Iterator[tuple]:
        for step in range(steps):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + offset + step + 1)
            x = torch.randn(batch, self.in_features, generator=g)
            yield x, torch.tanh(x @ self.a) @ self.b
