"""Wukong (Zhang et al., "Wukong: Towards a Scaling Law for Large-Scale Recommendation",
2024): a stack of interaction layers over the token embeddings X [B, n, d],

    X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + residual(X_i))

* FMB, the factorization-machine block: reshape(MLP(LN(flatten(X . (X^T . Y))))) with
  Y [n_i, k], through recperf's ``fm_projected_norm`` (never forms X . X^T) -> [B, n_F, d];
* LCB, the linear compress block: a bias-free linear over the feature axis -> [B, n_L, d];
* residual: X itself, or a bias-free feature-axis projection when n_i != n_F + n_L;
* LN over each embedding (d).

Knobs beyond the paper's defaults (``WukongConfig``): the plain FM (LN(flatten(X . X^T)),
upper triangle with the diagonal) instead of the projected one, no final LN, per-layer
widths, and the ablations without FMB (n_F = 0) or without LCB (n_L = 0), which build
no parameters for the missing block.

The over-arch reads the last layer's n_F + n_L embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recperf.models import fields
from recperf.models.common import (
    MLP,
    CTRModel,
    EmbeddingArch,
    FeatureSpec,
    ModelConfig,
    OverArch,
    feature_linear,
)
from recperf.models.tokens import DenseTokens, ExtraEmbeddings
from recperf.nn import FMInteraction

FM_KINDS = ("projected", "plain")


@dataclass
class WukongConfig(ModelConfig):
    """Wukong's knobs (the paper's upscaling recipe grows all of them). n_f, n_l, k and
    fm_hidden take one value for every layer or a tuple of one per layer (fm_hidden: a
    tuple of width tuples).

    layers: interaction layers (default 2).
    n_f: embeddings out of each FMB (default 8); 0: no FMB (the "without FMB" ablation).
    n_l: embeddings out of each LCB (default 8); 0: no LCB. n_f + n_l >= 1 in every layer.
    k: rank of the optimized FM's projection Y [n_i, k] (default 8; fm "projected" only).
    fm_hidden: hidden widths of the FMB's MLP (n_i k -> ... -> n_F d; default (64,)).
    fm: "projected" (default: the paper's optimized FM, X . (X^T . Y)) or "plain" (the
        n_i (n_i + 1) / 2 dot products of X . X^T, FuxiCTR's option).
    final_norm: the LN over each embedding at every layer's end (default True).
    dense_tokens: how the dense features become tokens: 1 (default: the embedding arch's
        dense MLP to one token), an int t > 1 (the dense MLP to t tokens) or
        "per_feature" (one token per dense feature, ``tokens.DenseTokens``).
    sparse_embeddings: () (default: one embedding per sparse feature) or one count per
        sparse feature: a count m > 1 gives that feature m embeddings (m - 1 more tables).
    """

    layers: int = 2
    n_f: int | tuple[int, ...] = 8
    n_l: int | tuple[int, ...] = 8
    k: int | tuple[int, ...] = 8
    fm_hidden: tuple = (64,)
    fm: str = "projected"
    final_norm: bool = True
    dense_tokens: int | str = 1
    sparse_embeddings: tuple[int, ...] = ()

    def validate(self) -> None:
        super().validate()
        fields.positive_int(self.layers, "layers")
        n_f = fields.per_layer(self.n_f, "n_f", self.layers, fields.non_negative_int)
        n_l = fields.per_layer(self.n_l, "n_l", self.layers, fields.non_negative_int)
        fields.per_layer(self.k, "k", self.layers, fields.positive_int)
        fields.per_layer(self.fm_hidden, "fm_hidden", self.layers, fields.widths)
        fields.one_of(self.fm, "fm", FM_KINDS)
        fields.boolean(self.final_norm, "final_norm")
        if self.dense_tokens != "per_feature":
            fields.positive_int(self.dense_tokens, "dense_tokens")
        self.sparse_embeddings = fields.widths(self.sparse_embeddings, "sparse_embeddings")
        for i, (f, g) in enumerate(zip(n_f, n_l, strict=True)):
            if f + g == 0:
                raise ValueError(f"n_f and n_l are both 0 in layer {i}: the layer has no output")

    def layer_widths(self, index: int) -> tuple[int, int, int, tuple[int, ...]]:
        """Layer ``index``'s (n_f, n_l, k, fm_hidden)."""
        per = (
            fields.per_layer(getattr(self, f), f, self.layers, check)
            for f, check in (
                ("n_f", fields.non_negative_int),
                ("n_l", fields.non_negative_int),
                ("k", fields.positive_int),
                ("fm_hidden", fields.widths),
            )
        )
        return tuple(p[index] for p in per)


class WukongLayer(nn.Module):
    """One Wukong layer (layer ``index`` of the config's widths): [B, n_in, d] ->
    [B, n_F + n_L, d]."""

    def __init__(self, n_in: int, config: WukongConfig, index: int = 0) -> None:
        super().__init__()
        c, d = config, config.dim
        n_f, n_l, k, fm_hidden = c.layer_widths(index)
        self.n_f, self.dim = n_f, d
        self.n_out = n_f + n_l
        self.fm = self.mlp = self.lcb = self.norm = None
        if n_f:
            if c.fm == "projected":
                self.fm = FMInteraction(n_in, k, mode="projected_norm", backend=c.backend)
                fm_out = n_in * k
            else:
                fm_out = n_in * (n_in + 1) // 2
                self.fm = nn.Sequential(
                    FMInteraction(n_in, mode="pairwise", include_self=True, backend=c.backend),
                    nn.LayerNorm(fm_out),
                )
            self.mlp = MLP.of(c, fm_out, fm_hidden, n_f * d)
        if n_l:
            self.lcb = nn.Linear(n_in, n_l, bias=False)
        self.residual = None if n_in == self.n_out else nn.Linear(n_in, self.n_out, bias=False)
        if c.final_norm:
            self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = []
        if self.fm is not None:
            blocks.append(self.mlp(self.fm(x)).view(x.shape[0], self.n_f, self.dim))
        if self.lcb is not None:
            blocks.append(feature_linear(x, self.lcb))
        res = x if self.residual is None else feature_linear(x, self.residual)
        y = torch.cat(blocks, dim=1) + res
        return y if self.norm is None else self.norm(y)


class WukongBody(nn.Module):
    """The layer stack: [B, n_in, d] -> [B, n_F + n_L, d] (the last layer's)."""

    def __init__(self, n_in: int, config: WukongConfig) -> None:
        super().__init__()
        layers = []
        for i in range(config.layers):
            layers.append(WukongLayer(n_in, config, i))
            n_in = layers[-1].n_out
        self.layers = nn.Sequential(*layers)
        self.n_out = n_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Wukong(CTRModel):
    """Embeddings (sequences mean-pooled into tokens; extra dense and sparse tokens per
    the config) -> Wukong layers -> over-arch."""

    name = "wukong"

    def __init__(self, spec: FeatureSpec, config: WukongConfig | None = None) -> None:
        config = config or WukongConfig()
        super().__init__(spec, config)
        self.embedding = EmbeddingArch(spec, config, pool_sequences=True)
        self.dense_tokens = None
        if spec.num_dense and config.dense_tokens != 1:
            self.embedding.dense = None  # DenseTokens replaces the one dense token
            self.dense_tokens = DenseTokens(spec.num_dense, config.dense_tokens, config)
        extra = config.sparse_embeddings
        self.extra = ExtraEmbeddings(spec, extra, config) if extra else None
        n = self.embedding.num_tokens
        n += sum(m.count for m in (self.dense_tokens, self.extra) if m is not None)
        self.body = WukongBody(n, config)
        self.over = OverArch(self.body.n_out * config.dim, config)

    def forward(self, batch) -> torch.Tensor:
        batch = self.prepare(batch)
        tokens = [self.embedding(batch)]
        if self.dense_tokens is not None:
            tokens.insert(0, self.dense_tokens(batch.dense))
        if self.extra is not None and self.extra.count:
            tokens.append(self.extra(batch))
        x = tokens[0] if len(tokens) == 1 else torch.cat(tokens, dim=1)
        return self.over(self.body(x).flatten(1))
