"""DHEN (Zhang et al., "DHEN: A Deep and Hierarchical Ensemble Network for Large-Scale
Click-Through Rate Prediction", 2022): layers of an ensemble of interaction modules,

    Y = LN(Ensemble(module_1(X), ..., module_M(X)) + ShortCut(X)),   X [B, n, d]

Modules (each computes a feature vector h_m [B, K_m], then a projection to m tokens):

* ``dot``: pairwise dots <x_i, x_j> (recperf ``fm_pairwise``) -> MLP;
* ``dcn``: the cross (X . X^T) . W + b in its low-rank form X . (X^T . W) + b (recperf
  ``fm_projected``, never forming X . X^T), W [n, k];
* ``attention``: a transformer encoder layer over the n tokens;
* ``linear``: the flattened tokens themselves (the projection is the linear module);
* ``conv``: a 1-D convolution over the feature axis (channels = d) -> ReLU.

Every module ends in a projection LinearNorm(K_m -> m d, LayerNorm): modules whose K_m
agree (attention, linear and conv all have n d) run their projections as one
GroupedLinearNorm. Ensemble: concat (M m tokens), sum or weighted sum (m tokens, learned
weights). ShortCut: identity (when the token count is kept) or a bias-free linear over
the feature axis. LN over each embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recperf.models import fields
from recperf.models.attention import EncoderLayer
from recperf.models.common import (
    MLP,
    FeatureSpec,
    LayerStack,
    ModelConfig,
    TokenStackModel,
    feature_linear,
)
from recperf.nn import FMInteraction, GroupedLinearNorm, LinearNorm

MODULES = ("dot", "dcn", "attention", "linear", "conv")
ENSEMBLES = ("concat", "sum", "weighted_sum")
SHORTCUTS = ("identity", "linear")


@dataclass
class DHENConfig(ModelConfig):
    """DHEN's knobs.

    layers: DHEN layers.
    modules: the ensemble's modules, from MODULES.
    ensemble: "concat", "sum" or "weighted_sum".
    shortcut: "identity" or "linear" (identity needs the token count kept).
    tokens: tokens out of each module (m); a layer outputs m (sum) or M m (concat).
    dot_hidden: hidden widths of the dot module's MLP.
    dcn_rank: k of the DCN cross's W [n, k].
    heads, ffn: the attention module's heads and FFN width.
    conv_kernel: the conv module's kernel size (odd).
    """

    layers: int = 2
    modules: tuple[str, ...] = ("dot", "dcn", "attention", "linear", "conv")
    ensemble: str = "sum"
    shortcut: str = "linear"
    tokens: int = 16
    dot_hidden: tuple[int, ...] = (64,)
    dcn_rank: int = 8
    heads: int = 2
    ffn: int = 32
    conv_kernel: int = 3

    def validate(self) -> None:
        super().validate()
        modules = self.modules
        if (
            not isinstance(modules, tuple | list)
            or not modules
            or any(m not in MODULES for m in modules)
        ):
            raise ValueError(f"modules must be a non-empty tuple from {MODULES}, got {modules!r}")
        self.modules = tuple(modules)
        fields.one_of(self.ensemble, "ensemble", ENSEMBLES)
        fields.one_of(self.shortcut, "shortcut", SHORTCUTS)
        fields.positive_int(self.layers, "layers")
        fields.positive_int(self.tokens, "tokens")
        self.dot_hidden = fields.widths(self.dot_hidden, "dot_hidden")
        fields.positive_int(self.dcn_rank, "dcn_rank")
        fields.positive_int(self.heads, "heads")
        fields.positive_int(self.ffn, "ffn")
        if fields.positive_int(self.conv_kernel, "conv_kernel") % 2 != 1:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if "attention" in self.modules and self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must split into heads={self.heads} heads")


class DotModule(nn.Module):
    def __init__(self, n: int, c: DHENConfig) -> None:
        super().__init__()
        self.fm = FMInteraction(n, mode="pairwise", backend=c.backend)
        self.mlp = MLP.of(c, n * (n - 1) // 2, c.dot_hidden, None)
        self.out_features = self.mlp.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.fm(x))


class DCNModule(nn.Module):
    def __init__(self, n: int, c: DHENConfig) -> None:
        super().__init__()
        self.fm = FMInteraction(n, c.dcn_rank, mode="projected", backend=c.backend)
        self.bias = nn.Parameter(torch.zeros(n, c.dcn_rank))
        self.out_features = n * c.dcn_rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fm(x) + self.bias).flatten(1)


class AttentionModule(nn.Module):
    def __init__(self, n: int, c: DHENConfig) -> None:
        super().__init__()
        self.layer = EncoderLayer(c.dim, c.heads, c.ffn, False, c.recipe, c.backend)
        self.out_features = n * c.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).flatten(1)


class LinearModule(nn.Module):
    def __init__(self, n: int, c: DHENConfig) -> None:
        super().__init__()
        self.out_features = n * c.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class ConvModule(nn.Module):
    def __init__(self, n: int, c: DHENConfig) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c.dim, c.dim, c.conv_kernel, padding=c.conv_kernel // 2)
        self.out_features = n * c.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2).flatten(1)


MODULE_CLASSES = {
    "dot": DotModule,
    "dcn": DCNModule,
    "attention": AttentionModule,
    "linear": LinearModule,
    "conv": ConvModule,
}


class DHENLayer(nn.Module):
    """One DHEN layer: [B, n_in, d] -> [B, n_out, d] with n_out = tokens (sum, weighted
    sum) or len(modules) * tokens (concat)."""

    def __init__(self, n_in: int, config: DHENConfig, tokens: int | None = None) -> None:
        super().__init__()
        c = config
        self.m = c.tokens if tokens is None else tokens
        self.dim, self.ensemble = c.dim, c.ensemble
        self.n_out = self.m * (len(c.modules) if c.ensemble == "concat" else 1)
        self.mods = nn.ModuleList(MODULE_CLASSES[name](n_in, c) for name in c.modules)
        # Modules with the same feature width share one grouped projection op.
        widths: dict[int, list[int]] = {}
        for i, mod in enumerate(self.mods):
            widths.setdefault(mod.out_features, []).append(i)
        self.groups = list(widths.values())
        self.projections = nn.ModuleList(
            LinearNorm(K, self.m * c.dim, recipe=c.recipe, backend=c.backend)
            if len(idx) == 1
            else GroupedLinearNorm(len(idx), K, self.m * c.dim, recipe=c.recipe, backend=c.backend)
            for K, idx in widths.items()
        )
        self.weights = (
            nn.Parameter(torch.ones(len(c.modules))) if c.ensemble == "weighted_sum" else None
        )
        if c.shortcut == "identity" and n_in != self.n_out:
            raise ValueError(
                f"shortcut 'identity' needs the token count kept, but the layer maps {n_in} "
                f"tokens to {self.n_out}; use shortcut='linear'"
            )
        self.shortcut = (
            None if c.shortcut == "identity" else nn.Linear(n_in, self.n_out, bias=False)
        )
        self.norm = nn.LayerNorm(c.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        hs = [mod(x) for mod in self.mods]
        outs: list[torch.Tensor | None] = [None] * len(hs)
        for proj, idx in zip(self.projections, self.groups, strict=True):
            if len(idx) == 1:
                outs[idx[0]] = proj(hs[idx[0]])
            else:
                y = proj(torch.stack([hs[i] for i in idx]))
                for g, i in enumerate(idx):
                    outs[i] = y[g]
        tokens = [o.view(B, self.m, self.dim) for o in outs]
        if self.ensemble == "concat":
            y = torch.cat(tokens, dim=1)
        elif self.ensemble == "sum":
            y = torch.stack(tokens).sum(0)
        else:
            y = torch.einsum("m,mbnd->bnd", self.weights, torch.stack(tokens))
        short = x if self.shortcut is None else feature_linear(x, self.shortcut)
        return self.norm(y + short)


class DHENBody(LayerStack):
    """The layer stack: [B, n_in, d] -> [B, n_out, d]."""

    def __init__(self, n_in: int, config: DHENConfig) -> None:
        super().__init__(lambda n: DHENLayer(n, config), n_in, config.layers)


class DHEN(TokenStackModel):
    """Embeddings (sequences mean-pooled into tokens) -> DHEN layers -> over-arch."""

    name = "dhen"

    def __init__(self, spec: FeatureSpec, config: DHENConfig | None = None) -> None:
        super().__init__(spec, config or DHENConfig(), DHENBody)
