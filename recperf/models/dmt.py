"""DMT (Luo et al., "Disaggregated Multi-Tower: Topology-aware Modeling Technique for
Efficient Large-Scale Recommendation", 2024) over any backbone of this package.

The feature tokens (every token but the dense one) are split into towers
(``recperf.distributed.partition_towers``: one tower per host, balanced by embedding
bytes, or a given partition). Each tower module runs one backbone layer over its own
features only and compresses the result to ``tower_tokens`` tokens (LinearNorm); the top
runs the backbone over [dense token || every tower's tokens]; then the over-arch:

    tower t:  X_t [B, F_t, d] -> layer -> flatten -> LinearNorm -> [B, tower_tokens d]
    top:      [dense || towers] [B, 1 + T tower_tokens, d] -> backbone body -> over-arch

In one process the towers run in a loop (:class:`DMT`). Under torchrun,
:class:`DistributedDMT` puts tower t on host t through
``recperf.distributed.TowerTransform``: each rank looks up its share of the tower's
tables for the global batch, the host's ranks gather the tower's features, the tower
module compresses them there, and only the compressed tokens cross hosts. Both paths give
the same logits and, after :meth:`DistributedDMT.sync_gradients`, the same gradients.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from recperf.distributed.tower_partitioner import FeatureCost, TowerPartition, partition_towers
from recperf.models import fields
from recperf.models.batch import Batch, FeatureSpec
from recperf.models.common import CTRModel, EmbeddingArch, ModelConfig, OverArch
from recperf.models.dhen import DHENBody, DHENConfig, DHENLayer
from recperf.models.interformer import InterFormerBody, InterFormerConfig, interaction_layer
from recperf.models.wukong import WukongBody, WukongConfig, WukongLayer
from recperf.nn import LinearNorm

BACKBONES = {"wukong": WukongConfig, "dhen": DHENConfig, "interformer": InterFormerConfig}


@dataclass
class DMTConfig(ModelConfig):
    """DMT's knobs.

    backbone: "wukong", "dhen" or "interformer": the towers' layer and the top's body.
    towers: tower count T (one per host under torchrun).
    tower_tokens: tokens a tower's output is compressed to.
    partition: the features (token indices after the dense token) of each tower; None:
        ``partition_towers`` balanced by embedding bytes.
    backbone_config: the backbone's config (None: its defaults); its dim, recipe,
        backend, dropout and mlp_norm are replaced by the DMT's own.
    """

    backbone: str = "wukong"
    towers: int = 2
    tower_tokens: int = 4
    partition: tuple[tuple[int, ...], ...] | None = None
    backbone_config: ModelConfig | None = field(default=None)

    def validate(self) -> None:
        super().validate()
        fields.one_of(self.backbone, "backbone", tuple(BACKBONES))
        fields.positive_int(self.towers, "towers")
        fields.positive_int(self.tower_tokens, "tower_tokens")
        if self.partition is not None:
            if not isinstance(self.partition, tuple | list):
                raise TypeError(f"partition must be a tuple of tuples, got {self.partition!r}")
            for t, members in enumerate(self.partition):
                if not isinstance(members, tuple | list) or not members:
                    raise ValueError(f"partition[{t}] must be a non-empty tuple, got {members!r}")
                for f, member in enumerate(members):
                    fields.non_negative_int(member, f"partition[{t}][{f}]")
        base = self.backbone_config
        if base is not None and not isinstance(base, BACKBONES[self.backbone]):
            raise TypeError(
                f"backbone_config must be a {BACKBONES[self.backbone].__name__} for backbone "
                f"{self.backbone!r}, got {type(base).__name__}"
            )


def _backbone_config(c: DMTConfig) -> ModelConfig:
    base = c.backbone_config if c.backbone_config is not None else BACKBONES[c.backbone]()
    shared = ("dim", "recipe", "backend", "dropout", "mlp_norm")
    return dataclasses.replace(base, **{f: getattr(c, f) for f in shared})


def gather_tokens(x: torch.Tensor, members) -> torch.Tensor:
    """x[:, members] for a fixed list: a stack of selects, not index_select, whose
    backward inductor (torch 2.13, CPU) compiles into code that corrupts the heap."""
    return torch.stack([x[:, f] for f in members], dim=1)


class TowerModule(nn.Module):
    """One tower: [N, F_t, d] -> one backbone layer -> [N, tower_tokens d]."""

    def __init__(self, num_features: int, backbone: str, bc: ModelConfig, tokens: int) -> None:
        super().__init__()
        if backbone == "wukong":
            self.layer = WukongLayer(num_features, bc)
        elif backbone == "dhen":
            self.layer = DHENLayer(num_features, bc)
        else:
            self.layer = interaction_layer(num_features, num_features, bc)
        self.out_features = tokens * bc.dim
        self.compress = LinearNorm(
            self.layer.n_out * bc.dim, self.out_features, recipe=bc.recipe, backend=bc.backend
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.compress(self.layer(x).flatten(1))


def default_partition(embedding: EmbeddingArch, towers: int) -> TowerPartition:
    """Towers balanced by each feature's embedding bytes (table-size agnostic: a lookup
    moves one row per id)."""
    costs = [FeatureCost(embedding.dim * 4) for _ in range(embedding.num_features)]
    return partition_towers(towers, costs, seed=0)


class DMT(CTRModel):
    """Towers in a loop, then the backbone (module docstring)."""

    name = "dmt"

    def __init__(self, spec: FeatureSpec, config: DMTConfig | None = None) -> None:
        config = config or DMTConfig()
        super().__init__(spec, config)
        c, bc = config, _backbone_config(config)
        self.backbone_config = bc
        self.embedding = EmbeddingArch(spec, c, pool_sequences=c.backbone != "interformer")
        F = self.embedding.num_features
        if c.partition is None:
            self.partition = default_partition(self.embedding, c.towers)
        else:
            self.partition = TowerPartition(tuple(tuple(t) for t in c.partition))
            every = sorted(f for t in self.partition.towers for f in t)
            if every != list(range(F)) or self.partition.num_towers != c.towers:
                raise ValueError(
                    f"partition must put each of the {F} features in exactly one of "
                    f"{c.towers} towers, got {c.partition}"
                )
        self.towers = nn.ModuleList(
            TowerModule(len(t), c.backbone, bc, c.tower_tokens) for t in self.partition.towers
        )
        n_top = int(self.embedding.dense is not None) + c.towers * c.tower_tokens
        if c.backbone == "wukong":
            self.body = WukongBody(n_top, bc)
            width = self.body.n_out * c.dim
        elif c.backbone == "dhen":
            self.body = DHENBody(n_top, bc)
            width = self.body.n_out * c.dim
        else:
            self.body = InterFormerBody(n_top, spec, bc)
            width = self.body.out_features
        self.over = OverArch(width, c)

    def top(self, batch: Batch, dense: torch.Tensor | None, towers: torch.Tensor):
        """Logits from the dense token [B, d] and the towers' outputs [B, sum O_t]."""
        d = self.config.dim  # not view(B, -1, d): -1 is ambiguous for an empty batch
        tokens = towers.view(towers.shape[0], towers.shape[1] // d, d)
        if dense is not None:
            tokens = torch.cat((dense.unsqueeze(1), tokens), dim=1)
        if self.config.backbone == "interformer":
            seqs = self.embedding.sequence_tokens(batch)
            return self.over(self.body(tokens, seqs, batch.seq_lengths))
        return self.over(self.body(tokens).flatten(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        batch = self.prepare(batch)
        x = self.embedding(batch)
        has_dense = self.embedding.dense is not None
        features = x[:, 1:] if has_dense else x
        outs = [
            tower(gather_tokens(features, members))
            for members, tower in zip(self.partition.towers, self.towers, strict=True)
        ]
        return self.top(batch, x[:, 0] if has_dense else None, torch.cat(outs, dim=1))
