"""Extra input tokens on top of the embedding arch's (one dense token, one per sparse
feature): the dense features as several tokens, and several embeddings for important
sparse features (Wukong, section 3: important features get more than one embedding)."""

from __future__ import annotations

import math

import torch
from torch import nn

from recperf.models.batch import Batch, FeatureSpec
from recperf.models.common import MLP, ModelConfig


class DenseTokens(nn.Module):
    """Dense features [B, num_dense] -> [B, count, d].

    mode "per_feature": one token per dense feature, x_j v_j + b_j (a learned vector per
    feature scaled by its value); an int t: the dense MLP (``dense_hidden``) to t d,
    reshaped to t tokens."""

    def __init__(self, num_dense: int, mode: int | str, config: ModelConfig) -> None:
        super().__init__()
        d = config.dim
        self.dim, self.per_feature = d, mode == "per_feature"
        if self.per_feature:
            self.count = num_dense
            self.weight = nn.Parameter(torch.randn(num_dense, d) / math.sqrt(d))
            self.bias = nn.Parameter(torch.zeros(num_dense, d))
        else:
            self.count = mode
            self.mlp = MLP.of(config, num_dense, config.dense_hidden, mode * d)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        if self.per_feature:
            return dense.unsqueeze(-1) * self.weight + self.bias
        return self.mlp(dense).view(dense.shape[0], self.count, self.dim)


class ExtraEmbeddings(nn.Module):
    """For each sparse feature f with ``counts[f]`` > 1, counts[f] - 1 more tables looked
    up with f's ids: [B, sum(counts[f] - 1), d]."""

    def __init__(self, spec: FeatureSpec, counts: tuple[int, ...], config: ModelConfig) -> None:
        super().__init__()
        if len(counts) != spec.num_sparse:
            raise ValueError(
                f"sparse_embeddings must give one count per sparse feature "
                f"({spec.num_sparse}), got {counts!r}"
            )
        d = config.dim
        self.features = [f for f, m in enumerate(counts) for _ in range(m - 1)]
        self.tables = nn.ModuleList(
            nn.EmbeddingBag(spec.cardinalities[f], d, mode=config.pooling) for f in self.features
        )
        for table in self.tables:
            nn.init.normal_(table.weight, std=1 / math.sqrt(d))
        self.count = len(self.features)

    def forward(self, batch: Batch) -> torch.Tensor:
        return torch.stack(
            [
                table(batch.ids[f], batch.offsets[f])
                for f, table in zip(self.features, self.tables, strict=True)
            ],
            dim=1,
        )
