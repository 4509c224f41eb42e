"""InterFormer (Zeng et al., "InterFormer: Towards Effective Heterogeneous Interaction
Learning for Click-Through Rate Prediction", 2024): non-sequence tokens X [B, n, d] and a
behaviour sequence S [B, c + T, d] (c CLS tokens in front) exchange summaries every layer:

* cross arch: X_sum = a gated compression of X (sigma(G X) * (C X), G and C linear over
  the feature axis) -> [B, n_sum, d]; S_sum = gating of [CLS || PMA || recent-K tokens]
  (PMA: learned seeds attending over the items) -> [B, c + p + K, d];
* interaction arch: a DHEN layer (by default; or a Wukong layer) over [X || S_sum] back to
  n tokens;
* sequence arch: a personalized FFN, S <- LN(S + S . W(X_sum)) with a per-example d x d
  weight made from X_sum, then a transformer encoder layer with RoPE over the sequence
  (padded items masked);
* several sequences are first merged by MaskNet: the concatenated items masked by a
  learned gate over the time axis, then linearly compressed to the longest one's length.

The over-arch reads the final [X_sum || S_sum]. Defaults: 4 CLS, 2 PMA, 2 recent tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recperf.models import fields
from recperf.models.attention import EncoderLayer, MultiHeadAttention
from recperf.models.common import (
    CTRModel,
    EmbeddingArch,
    FeatureSpec,
    ModelConfig,
    OverArch,
    feature_linear,
    sequence_mask,
)
from recperf.models.dhen import MODULES as DHEN_MODULES
from recperf.models.dhen import DHENConfig, DHENLayer
from recperf.models.wukong import WukongConfig, WukongLayer
from recperf.nn import LinearNorm

INTERACTIONS = ("dhen", "wukong")


@dataclass
class InterFormerConfig(ModelConfig):
    """InterFormer's knobs.

    layers: InterFormer layers.
    cls_tokens, pma_tokens, recent_tokens: the sequence summary's parts.
    summary_tokens: tokens of X_sum.
    heads, ffn: the sequence transformer's heads and FFN width (head size even: RoPE).
    interaction: "dhen" (default) or "wukong", the interaction arch.
    interaction_modules: the DHEN interaction layer's modules.
    personalized_ffn: the sequence arch's personalized FFN from X_sum (default True;
        False: the paper's ablation, the sequence arch ignores the non-sequence side).
    rope: rotary positions in the sequence transformer (default True).
    """

    layers: int = 2
    cls_tokens: int = 4
    pma_tokens: int = 2
    recent_tokens: int = 2
    summary_tokens: int = 4
    heads: int = 2
    ffn: int = 32
    interaction: str = "dhen"
    interaction_modules: tuple[str, ...] = ("dot", "dcn", "linear")
    personalized_ffn: bool = True
    rope: bool = True

    def validate(self) -> None:
        super().validate()
        for name in ("layers", "cls_tokens", "summary_tokens", "heads", "ffn"):
            fields.positive_int(getattr(self, name), name)
        for name in ("pma_tokens", "recent_tokens"):
            fields.non_negative_int(getattr(self, name), name)
        fields.one_of(self.interaction, "interaction", INTERACTIONS)
        modules = self.interaction_modules
        if (
            not isinstance(modules, tuple | list)
            or not modules
            or any(m not in DHEN_MODULES for m in modules)
        ):
            raise ValueError(
                f"interaction_modules must be a non-empty tuple from {DHEN_MODULES}, "
                f"got {modules!r}"
            )
        self.interaction_modules = tuple(modules)
        fields.boolean(self.personalized_ffn, "personalized_ffn")
        fields.boolean(self.rope, "rope")
        if self.dim % self.heads or (self.rope and (self.dim // self.heads) % 2):
            raise ValueError(
                f"dim {self.dim} must split into heads={self.heads} heads of even size (RoPE)"
            )


def interaction_layer(n_in: int, n_out: int, c: InterFormerConfig) -> nn.Module:
    """The interaction arch: [B, n_in, d] -> [B, n_out, d]."""
    common = {f: getattr(c, f) for f in ("dim", "recipe", "backend", "dropout", "mlp_norm")}
    if c.interaction == "dhen":
        dhen = DHENConfig(modules=c.interaction_modules, tokens=n_out, **common)
        return DHENLayer(n_in, dhen)
    if c.interaction == "wukong":
        n_f = (n_out + 1) // 2
        return WukongLayer(n_in, WukongConfig(n_f=n_f, n_l=n_out - n_f, **common))
    raise ValueError(f"interaction must be one of {INTERACTIONS}, got {c.interaction!r}")


class XSummary(nn.Module):
    """Gated compression of X [B, n, d] -> [B, n_sum, d]."""

    def __init__(self, n: int, n_sum: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n, 2 * n_sum, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = feature_linear(x, self.proj).chunk(2, dim=1)
        return value * torch.sigmoid(gate)


class SSummary(nn.Module):
    """[CLS || PMA || recent-K] of S [B, c + T, d], gated -> [B, c + p + K, d]."""

    def __init__(self, c: InterFormerConfig) -> None:
        super().__init__()
        d = c.dim
        self.cls, self.recent = c.cls_tokens, c.recent_tokens
        self.seeds = nn.Parameter(torch.randn(c.pma_tokens, d) / math.sqrt(d))
        self.pma = MultiHeadAttention(d, c.heads) if c.pma_tokens else None
        self.pma_out = (
            LinearNorm(d, d, recipe=c.recipe, backend=c.backend) if c.pma_tokens else None
        )
        self.gate = nn.Linear(d, d)

    def forward(self, s: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B = s.shape[0]
        parts = [s[:, : self.cls]]
        items, item_mask = s[:, self.cls :], mask[:, self.cls :]
        if self.pma is not None:
            seeds = self.seeds.unsqueeze(0).expand(B, -1, -1)
            parts.append(self.pma_out(self.pma(seeds, items, item_mask), seeds))
        if self.recent:
            back = torch.arange(self.recent - 1, -1, -1, device=s.device)
            pos = (lengths.unsqueeze(1) - 1 - back).clamp_min(0)  # a short sequence repeats
            parts.append(items.gather(1, pos.unsqueeze(-1).expand(-1, -1, s.shape[-1])))
        tokens = torch.cat(parts, dim=1)
        return tokens * torch.sigmoid(self.gate(tokens))


class PersonalizedFFN(nn.Module):
    """S [B, L, d] -> LN(S + S . W_b), W_b [d, d] made per example from X_sum."""

    def __init__(self, n_sum: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Linear(n_sum * dim, dim * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, s: torch.Tensor, x_sum: torch.Tensor) -> torch.Tensor:
        w = self.weight(x_sum.flatten(1)).view(-1, self.dim, self.dim)
        return self.norm(s + torch.bmm(s, w))


class MaskNetMerge(nn.Module):
    """Several sequences [B, T_i, d] -> one [B, max T_i, d]: concat on the time axis, a
    sigmoid gate over the time axis, a linear compression of the time axis."""

    def __init__(self, lengths: list[int]) -> None:
        super().__init__()
        total = sum(lengths)
        self.out_len = max(lengths)
        self.mask = nn.Linear(total, total)
        self.compress = nn.Linear(total, self.out_len, bias=False)

    def forward(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        s = torch.cat(seqs, dim=1)
        gated = s * torch.sigmoid(feature_linear(s, self.mask))
        return feature_linear(gated, self.compress)


class InterFormerLayer(nn.Module):
    def __init__(self, n: int, c: InterFormerConfig) -> None:
        super().__init__()
        n_s = c.cls_tokens + c.pma_tokens + c.recent_tokens
        # X_sum feeds only the personalized FFN: without it, no X summary either.
        self.x_summary = XSummary(n, c.summary_tokens) if c.personalized_ffn else None
        self.s_summary = SSummary(c)
        self.interaction = interaction_layer(n + n_s, n, c)
        self.pffn = PersonalizedFFN(c.summary_tokens, c.dim) if c.personalized_ffn else None
        self.encoder = EncoderLayer(c.dim, c.heads, c.ffn, c.rope, c.recipe, c.backend)

    def forward(self, x, s, mask, lengths):
        s_sum = self.s_summary(s, mask, lengths)
        x_next = self.interaction(torch.cat((x, s_sum), dim=1))
        if self.pffn is not None:
            s = self.pffn(s, self.x_summary(x))
        s_next = self.encoder(s, mask)
        return x_next, s_next


class InterFormerBody(nn.Module):
    """(MaskNet merge) -> CLS tokens -> layers -> final cross summaries: tokens X
    [B, n, d] and the sequences' item embeddings -> [B, out_features]."""

    def __init__(self, n: int, spec: FeatureSpec, c: InterFormerConfig) -> None:
        super().__init__()
        if not spec.sequences:
            raise ValueError("InterFormer needs at least one sequence feature in the spec")
        self.max_lens = [s.max_len for s in spec.sequences]
        self.merge = MaskNetMerge(self.max_lens) if len(self.max_lens) > 1 else None
        self.cls = nn.Parameter(torch.randn(c.cls_tokens, c.dim) / math.sqrt(c.dim))
        self.layers = nn.ModuleList(InterFormerLayer(n, c) for _ in range(c.layers))
        self.x_summary = XSummary(n, c.summary_tokens)
        self.s_summary = SSummary(c)
        n_s = c.cls_tokens + c.pma_tokens + c.recent_tokens
        self.out_features = (c.summary_tokens + n_s) * c.dim

    def sequence(self, seqs: list[torch.Tensor], lengths: tuple[torch.Tensor, ...]):
        """S [B, c + T, d] with the CLS tokens in front, its key mask, the item counts."""
        # Pad every sequence to its spec's length: one shape per model, whatever the batch.
        seqs = [
            F.pad(t, (0, 0, 0, T - t.shape[1])) if t.shape[1] < T else t
            for t, T in zip(seqs, self.max_lens, strict=True)
        ]
        if self.merge is None:
            items, count = seqs[0], lengths[0]
        else:
            items = self.merge(seqs)
            count = torch.full_like(lengths[0], items.shape[1])
        B = items.shape[0]
        s = torch.cat((self.cls.unsqueeze(0).expand(B, -1, -1), items), dim=1)
        cls_mask = torch.ones(B, self.cls.shape[0], dtype=torch.bool, device=s.device)
        mask = torch.cat((cls_mask, sequence_mask(count, items.shape[1])), dim=1)
        return s, mask, count

    def forward(self, x: torch.Tensor, seqs: list[torch.Tensor], lengths) -> torch.Tensor:
        s, mask, count = self.sequence(seqs, lengths)
        for layer in self.layers:
            x, s = layer(x, s, mask, count)
        summary = torch.cat((self.x_summary(x), self.s_summary(s, mask, count)), dim=1)
        return summary.flatten(1)


class InterFormer(CTRModel):
    """Embeddings -> InterFormer body -> over-arch."""

    name = "interformer"

    def __init__(self, spec: FeatureSpec, config: InterFormerConfig | None = None) -> None:
        config = config or InterFormerConfig()
        super().__init__(spec, config)
        self.embedding = EmbeddingArch(spec, config, pool_sequences=False)
        self.body = InterFormerBody(self.embedding.num_tokens, spec, config)
        self.over = OverArch(self.body.out_features, config)

    def forward(self, batch) -> torch.Tensor:
        batch = self.prepare(batch)
        x = self.embedding(batch)
        seqs = self.embedding.sequence_tokens(batch)
        return self.over(self.body(x, seqs, batch.seq_lengths))
