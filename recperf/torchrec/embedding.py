"""The sparse tables of a model as one torchrec ``EmbeddingBagCollection`` (config
``tables="torchrec"``), so DistributedModelParallel and torchrec's planner find them and
shard them (with torchrec's fused embedding optimizers). One table per sparse feature,
named ``t_<feature>``; a table narrower or wider than the model dim (``table_dims``) is
projected to it by a bias-free linear, as DLRM-style models with mixed table widths do."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recperf.models.batch import Batch, FeatureSpec

POOLING = {"sum": PoolingType.SUM, "mean": PoolingType.MEAN}


def table_name(feature: str) -> str:
    return f"t_{feature}"


class TorchRecTables(nn.Module):
    """Batch -> one [B, dim] token per sparse feature, through an EmbeddingBagCollection."""

    def __init__(
        self, spec: FeatureSpec, dim: int, pooling: str, table_dims: tuple[int, ...] | None
    ) -> None:
        super().__init__()
        dims = tuple(table_dims) if table_dims is not None else (dim,) * spec.num_sparse
        if len(dims) != spec.num_sparse or any(int(t) < 1 for t in dims):
            raise ValueError(
                f"table_dims must give each of the {spec.num_sparse} sparse features a width "
                f">= 1, got {table_dims}"
            )
        self.spec = spec
        self.ebc = EmbeddingBagCollection(
            tables=[
                EmbeddingBagConfig(
                    num_embeddings=card,
                    embedding_dim=t,
                    name=table_name(name),
                    feature_names=[name],
                    pooling=POOLING[pooling],
                    init_fn=lambda w, t=t: nn.init.normal_(w, std=1 / math.sqrt(t)),
                )
                for name, card, t in zip(spec.sparse, spec.cardinalities, dims, strict=True)
            ]
        )
        self.proj = nn.ModuleDict(
            {
                name: nn.Linear(t, dim, bias=False)
                for name, t in zip(spec.sparse, dims, strict=True)
                if t != dim
            }
        )

    def kjt(self, batch: Batch) -> KeyedJaggedTensor:
        """The batch's sparse features as one KJT (keys in spec order)."""
        if batch.weights and any(w is not None for w in batch.weights):
            raise ValueError(
                "weighted sparse features are not supported with tables='torchrec' yet "
                "(use tables='nn')"
            )
        lengths = [
            torch.diff(off, append=off.new_tensor([ids.numel()]))
            for ids, off in zip(batch.ids, batch.offsets, strict=True)
        ]
        return KeyedJaggedTensor(
            keys=list(self.spec.sparse),
            values=torch.cat(batch.ids),
            lengths=torch.cat(lengths),
            stride=batch.size,
        )

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        pooled = self.ebc(self.kjt(batch)).to_dict()
        return [
            self.proj[name](pooled[name]) if name in self.proj else pooled[name]
            for name in self.spec.sparse
        ]
