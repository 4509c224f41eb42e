"""Wukong (Zhang et al., "Wukong: Towards a Scaling Law for Large-Scale Recommendation",
2024): a stack of interaction layers over the token embeddings X [B, n, d],

    X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + residual(X_i))

* FMB, the factorization-machine block: reshape(MLP(LN(flatten(X . (X^T . Y))))) with
  Y [n_i, k], through recperf's ``fm_projected_norm`` (never forms X . X^T) -> [B, n_F, d];
* LCB, the linear compress block: a bias-free linear over the feature axis -> [B, n_L, d];
* residual: X itself, or a bias-free feature-axis projection when n_i != n_F + n_L;
* LN over each embedding (d).

The over-arch reads the last layer's n_F + n_L embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recperf.models.common import (
    MLP,
    FeatureSpec,
    LayerStack,
    ModelConfig,
    TokenStackModel,
    feature_linear,
)
from recperf.nn import FMInteraction


@dataclass
class WukongConfig(ModelConfig):
    """Wukong's knobs (the paper's upscaling recipe grows all of them).

    layers: interaction layers.
    n_f: embeddings out of each FMB.
    n_l: embeddings out of each LCB.
    k: rank of the optimized FM's projection Y [n_i, k].
    fm_hidden: hidden widths of the FMB's MLP (n_i k -> ... -> n_F d).
    """

    layers: int = 2
    n_f: int = 8
    n_l: int = 8
    k: int = 8
    fm_hidden: tuple[int, ...] = (64,)


class WukongLayer(nn.Module):
    """One Wukong layer: [B, n_in, d] -> [B, n_F + n_L, d]."""

    def __init__(self, n_in: int, config: WukongConfig) -> None:
        super().__init__()
        c, d = config, config.dim
        self.n_f, self.dim = c.n_f, d
        self.n_out = c.n_f + c.n_l
        self.fm = FMInteraction(n_in, c.k, mode="projected_norm", backend=c.backend)
        self.mlp = MLP(n_in * c.k, c.fm_hidden, c.n_f * d, c.recipe, c.backend)
        self.lcb = nn.Linear(n_in, c.n_l, bias=False)
        self.residual = None if n_in == self.n_out else nn.Linear(n_in, self.n_out, bias=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmb = self.mlp(self.fm(x)).view(x.shape[0], self.n_f, self.dim)
        lcb = feature_linear(x, self.lcb)
        res = x if self.residual is None else feature_linear(x, self.residual)
        return self.norm(torch.cat((fmb, lcb), dim=1) + res)


class WukongBody(LayerStack):
    """The layer stack: [B, n_in, d] -> [B, n_F + n_L, d]."""

    def __init__(self, n_in: int, config: WukongConfig) -> None:
        if config.layers < 1:
            raise ValueError(f"layers must be >= 1, got {config.layers}")
        super().__init__(lambda n: WukongLayer(n, config), n_in, config.layers)


class Wukong(TokenStackModel):
    """Embeddings (sequences mean-pooled into tokens) -> Wukong layers -> over-arch."""

    name = "wukong"

    def __init__(self, spec: FeatureSpec, config: WukongConfig | None = None) -> None:
        super().__init__(spec, config or WukongConfig(), WukongBody)
