"""FMInteraction: the factorization-machine interaction as a module over the FM ops."""

from __future__ import annotations

import math

import torch
from torch import nn

from recperf.ops._checks import checked_types
from recperf.ops.fm import fm_pairwise, fm_projected, fm_projected_norm, pair_count

MODES = ("projected_norm", "projected", "pairwise")


class FMInteraction(nn.Module):
    """Interactions among ``num_features`` embeddings x [B, n, d].

    Modes:
      - ``"projected_norm"`` (Wukong's FM block core): layer_norm(flatten(x . (x^T . proj)))
        -> [B, n * rank], with an elementwise affine unless ``elementwise_affine=False``;
      - ``"projected"``: x . (x^T . proj) -> [B, n, rank];
      - ``"pairwise"`` (DLRM): the dots <x_i, x_j> for i < j (i <= j with
        ``include_self``) -> [B, n(n-1)/2]; no parameters.

    ``proj`` [n, rank] is a parameter, initialised N(0, 1/n) so that x^T . proj keeps the
    scale of one embedding. ``backend`` is passed to the op (a LoKA plan sets it).
    """

    @checked_types
    def __init__(
        self,
        num_features: int,
        rank: int | None = None,
        mode: str = "projected_norm",
        include_self: bool = False,
        elementwise_affine: bool = True,
        eps: float = 1e-5,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if mode != "pairwise" and (not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank must be a positive int for mode {mode!r}, got {rank!r}")
        self.num_features, self.rank, self.mode = num_features, rank, mode
        self.include_self, self.eps, self.backend = include_self, eps, backend
        factory = {"device": device, "dtype": dtype}
        if mode == "pairwise":
            self.register_parameter("proj", None)
        else:
            self.proj = nn.Parameter(torch.empty(num_features, rank, **factory))
        if mode == "projected_norm" and elementwise_affine:
            self.weight = nn.Parameter(torch.empty(num_features * rank, **factory))
            self.bias = nn.Parameter(torch.empty(num_features * rank, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.proj is not None:
            nn.init.normal_(self.proj, std=1.0 / math.sqrt(self.num_features))
        if self.weight is not None:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The output's shape after the batch dimension."""
        if self.mode == "pairwise":
            return (pair_count(self.num_features, self.include_self),)
        if self.mode == "projected":
            return (self.num_features, self.rank)
        return (self.num_features * self.rank,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pairwise":
            return fm_pairwise(x, self.include_self, self.backend)
        if self.mode == "projected":
            return fm_projected(x, self.proj, self.backend)
        return fm_projected_norm(x, self.proj, self.weight, self.bias, self.eps, self.backend)

    def extra_repr(self) -> str:
        rank = "" if self.mode == "pairwise" else f", rank={self.rank}"
        return f"num_features={self.num_features}{rank}, mode={self.mode!r}"
