"""Parts every model shares: the config fields, the embedding arch (one nn.EmbeddingBag per
sparse feature, the dense MLP, sequence tables), the MLP block and the over-arch, the
``CTRModel`` base (input checks, loss), and the token-stack shape Wukong and DHEN share.

Every linear layer followed by a norm is a ``recperf.nn.LinearNorm`` (MLP blocks are
Linear -> LayerNorm -> ReLU), so a LoKA plan can switch its recipe; a linear with no norm
after it (an MLP's last layer, the logit) stays ``nn.Linear``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recperf.dispatch import BACKENDS
from recperf.models import fields
from recperf.models.batch import Batch, FeatureSpec, SequenceSpec, check_batch, check_weights
from recperf.nn import LinearNorm
from recperf.ops.recipes import NORMS, recipe

__all__ = [
    "MLP",
    "Batch",
    "CTRModel",
    "EmbeddingArch",
    "FeatureSpec",
    "LayerStack",
    "ModelConfig",
    "OverArch",
    "SequenceSpec",
    "TokenStackModel",
]


@dataclass
class ModelConfig:
    """Fields every model has. Defaults are sized for a CPU: the scaling sweep and a GPU
    run widen them.

    dim: embedding dimension d of every token.
    dense_hidden: hidden widths of the dense MLP (num_dense -> ... -> d, one token).
    over_hidden: hidden widths of the over-arch (interaction output -> ... -> 1 logit).
    pooling: nn.EmbeddingBag mode of the sparse features ("sum" or "mean").
    recipe: linear_norm recipe of every LinearNorm ("fp32" here: the CPU has no bf16 or
        FP8 matrix units; pass "bf16" or an FP8 recipe on a GPU).
    backend: recperf op backend ("auto": the dispatcher's default).
    check_inputs: validate every batch in forward (skipped under torch.compile).
    tables: "nn" (one nn.EmbeddingBag per sparse feature) or "torchrec" (one torchrec
        EmbeddingBagCollection that DistributedModelParallel shards; recperf.torchrec).
    table_dims: with tables="torchrec", each sparse table's width (None: all ``dim``),
        projected to ``dim``.
    dropout: dropout rate after every hidden activation of the models' MLPs (inner MLPs
        and over-arch; the embedding arch's dense MLP has none), the peers' ``dropout`` /
        ``net_dropout``; default 0.
    mlp_norm: the norm after each hidden linear of those MLPs: "layer" (default), "rms",
        "none" (a LinearNorm each, LoKA can plan them) or "batch" (nn.Linear +
        nn.BatchNorm1d, the peers' choice; no LoKA site).

    Every field is checked when the config is built (``__post_init__``): a TypeError or
    ValueError names the field and the value.
    """

    dim: int = 16
    dense_hidden: tuple[int, ...] = (64,)
    over_hidden: tuple[int, ...] = (64,)
    pooling: str = "sum"
    recipe: str = "fp32"
    backend: str = "auto"
    check_inputs: bool = True
    dropout: float = 0.0
    mlp_norm: str = "layer"
    tables: str = "nn"
    table_dims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (subclasses extend it, calling super first)."""
        fields.positive_int(self.dim, "dim")
        self.dense_hidden = fields.widths(self.dense_hidden, "dense_hidden")
        self.over_hidden = fields.widths(self.over_hidden, "over_hidden")
        fields.one_of(self.pooling, "pooling", ("sum", "mean"))
        if not isinstance(self.recipe, str):
            raise TypeError(f"recipe must be a str, got {type(self.recipe).__name__}")
        recipe(self.recipe)
        fields.one_of(self.backend, "backend", (*BACKENDS, "auto"))
        fields.boolean(self.check_inputs, "check_inputs")
        self.dropout = fields.probability(self.dropout, "dropout")
        fields.one_of(self.mlp_norm, "mlp_norm", MLP_NORMS)
        fields.one_of(self.tables, "tables", ("nn", "torchrec"))
        if self.table_dims is not None:
            if self.tables != "torchrec":
                raise ValueError("table_dims needs tables='torchrec' (nn tables are all dim wide)")
            self.table_dims = fields.widths(self.table_dims, "table_dims")

    def as_dict(self) -> dict:
        """JSON-ready (tuples as lists, nested configs as dicts), for checkpoints."""
        return json.loads(json.dumps(asdict(self)))


MLP_NORMS = (*NORMS, "batch")


class MLP(nn.Module):
    """in -> [LinearNorm(h) -> ReLU (-> Dropout)] per hidden width -> nn.Linear(out) when
    ``out``. ``norm`` "batch" makes each hidden linear nn.Linear + nn.BatchNorm1d. Each
    hidden layer keeps two entries (linear-norm, activation) whatever the options, so
    parameter names do not depend on the dropout rate."""

    def __init__(
        self,
        in_features: int,
        hidden: tuple[int, ...],
        out: int | None,
        recipe: str = "fp32",
        backend: str = "auto",
        dropout: float = 0.0,
        norm: str = "layer",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            if norm == "batch":
                linear: nn.Module = nn.Sequential(nn.Linear(width, h), nn.BatchNorm1d(h))
            else:
                linear = LinearNorm(width, h, norm=norm, recipe=recipe, backend=backend)
            act = nn.Sequential(nn.ReLU(), nn.Dropout(dropout)) if dropout else nn.ReLU()
            layers += [linear, act]
            width = h
        if out is not None:
            layers.append(nn.Linear(width, out))
            width = out
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    @classmethod
    def of(cls, config: ModelConfig, in_features: int, hidden, out: int | None) -> MLP:
        """An MLP with ``config``'s recipe, backend, dropout and norm."""
        c = config
        return cls(in_features, hidden, out, c.recipe, c.backend, c.dropout, c.mlp_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EmbeddingArch(nn.Module):
    """Batch -> tokens X [B, n, d]: the dense token (when there are dense features), one
    token per sparse feature, and, with ``pool_sequences``, one mean-pooled token per
    sequence (how models without a sequence arch see it). ``sequence_tokens`` gives the
    sequences token by token [B, T, d] for InterFormer."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig, pool_sequences: bool) -> None:
        super().__init__()
        d = config.dim
        self.spec, self.dim, self.pool_sequences = spec, d, pool_sequences
        if config.tables == "torchrec":
            from recperf.torchrec.embedding import TorchRecTables

            self.tables = TorchRecTables(spec, d, config.pooling, config.table_dims)
        else:
            self.tables = nn.ModuleList(
                nn.EmbeddingBag(c, d, mode=config.pooling) for c in spec.cardinalities
            )
        self.dense = (
            MLP(spec.num_dense, config.dense_hidden, d, config.recipe, config.backend)
            if spec.num_dense
            else None
        )
        # mode="sum" with per-sample weights 1/length: a masked mean over a padded [B, T]
        # without data-dependent shapes (torch.compile keeps one graph).
        self.seq_tables = nn.ModuleList(
            nn.EmbeddingBag(s.vocab, d, mode="sum") for s in spec.sequences
        )
        nn_tables = (
            self.seq_tables if config.tables == "torchrec" else (*self.tables, *self.seq_tables)
        )
        for table in nn_tables:
            nn.init.normal_(table.weight, std=1 / math.sqrt(d))

    @property
    def num_tokens(self) -> int:
        pooled = len(self.spec.sequences) if self.pool_sequences else 0
        return int(self.dense is not None) + self.spec.num_sparse + pooled

    @property
    def num_features(self) -> int:
        """Tokens other than the dense one (what DMT splits into towers)."""
        return self.num_tokens - int(self.dense is not None)

    def forward(self, batch: Batch) -> torch.Tensor:
        dense = self.dense_token(batch)
        tokens = [] if dense is None else [dense]
        tokens += self.sparse_tokens(batch)
        tokens += [self.token(batch, f) for f in range(self.spec.num_sparse, self.num_features)]
        return torch.stack(tokens, dim=1)

    def sparse_tokens(self, batch: Batch) -> list[torch.Tensor]:
        """Each sparse feature's token [B, d]."""
        if not isinstance(self.tables, nn.ModuleList):  # one torchrec lookup for all
            return self.tables(batch)
        return [self.token(batch, f) for f in range(self.spec.num_sparse)]

    def token(self, batch: Batch, feature: int) -> torch.Tensor:
        """One feature's token [B, d]; features are numbered as the tokens after the dense
        one: sparse features, then (with pool_sequences) pooled sequences."""
        if feature < self.spec.num_sparse and not isinstance(self.tables, nn.ModuleList):
            return self.tables(batch)[feature]
        if feature < self.spec.num_sparse:
            w = batch.weights[feature] if batch.weights else None
            return self.tables[feature](batch.ids[feature], batch.offsets[feature], w)
        s = feature - self.spec.num_sparse
        table, ids, lengths = self.seq_tables[s], batch.seq_ids[s], batch.seq_lengths[s]
        weights = mean_weights(lengths, ids.shape[1], table.weight.dtype)
        return table(ids, per_sample_weights=weights)

    def dense_token(self, batch: Batch) -> torch.Tensor | None:
        return None if self.dense is None else self.dense(batch.dense)

    def sequence_tokens(self, batch: Batch) -> list[torch.Tensor]:
        """Each sequence as [B, T, d], padded positions zeroed."""
        out = []
        seqs = zip(self.seq_tables, batch.seq_ids, batch.seq_lengths, strict=True)
        for table, ids, lengths in seqs:
            mask = sequence_mask(lengths, ids.shape[1])
            out.append(F.embedding(ids, table.weight) * mask.unsqueeze(-1))
        return out


def feature_linear(x: torch.Tensor, linear: nn.Module) -> torch.Tensor:
    """A linear over the feature axis of x [B, n, d] -> [B, n_out, d]."""
    return linear(x.transpose(1, 2)).transpose(1, 2)


def sequence_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """[B, T] bool: position t of row b holds an item (t < lengths[b])."""
    return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def mean_weights(lengths: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] per-sample weights that make a sum-mode EmbeddingBag over a padded [B, T]
    the mean of each row's items: 1 / length on items, 0 on padding."""
    return sequence_mask(lengths, T).to(dtype) / lengths.unsqueeze(1).to(dtype)


class OverArch(nn.Module):
    """The top MLP: [B, in] -> logits [B]."""

    def __init__(self, in_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.mlp = MLP.of(config, in_features, config.over_hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).squeeze(-1)


class CTRModel(nn.Module):
    """Base of the four models: ``forward(batch) -> logits [B]``; ``loss(batch)``."""

    name = "model"

    def __init__(self, spec: FeatureSpec, config: ModelConfig) -> None:
        super().__init__()
        self.spec, self.config = spec, config

    def check(self, batch: Batch) -> None:
        if self.config.check_inputs and not torch.compiler.is_compiling():
            param = next(self.parameters(), None)
            check_batch(batch, self.spec, None if param is None else param.dtype)
            check_weights(batch, self.spec, self.config.pooling)

    def prepare(self, batch) -> Batch:
        """The checked ``Batch`` of a ``Batch`` or a torchrec ``Batch`` (KJT sparse features,
        converted by recperf.torchrec.kjt)."""
        if type(batch).__module__.startswith("torchrec"):
            from recperf.torchrec.kjt import batch_from_torchrec

            batch = batch_from_torchrec(batch, self.spec)
        self.check(batch)
        return batch

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean binary cross-entropy of the batch's labels."""
        if type(batch).__module__.startswith("torchrec"):
            from recperf.torchrec.kjt import batch_from_torchrec

            batch = batch_from_torchrec(batch, self.spec)
        if batch.labels is None:
            raise ValueError("loss needs a batch with labels")
        return F.binary_cross_entropy_with_logits(self(batch), batch.labels.to(torch.float32))

    def describe(self) -> dict:
        """What a checkpoint must match to be loaded into this model: the architecture
        (recipe, backend and input checks may change between runs)."""
        return {
            "model": self.name,
            "spec": self.spec.as_dict(),
            "config": _architecture(self.config.as_dict()),
        }


RUNTIME_FIELDS = ("recipe", "backend", "check_inputs", "dropout")


def _architecture(config: dict) -> dict:
    return {
        k: _architecture(v) if isinstance(v, dict) else v
        for k, v in config.items()
        if k not in RUNTIME_FIELDS
    }


class LayerStack(nn.Module):
    """Token layers in sequence, each told the previous one's token count:
    [B, n_in, d] -> [B, n_out, d]. ``make_layer(n_in)`` returns a layer with ``n_out``."""

    def __init__(self, make_layer: Callable[[int], nn.Module], n_in: int, count: int) -> None:
        super().__init__()
        layers = []
        for _ in range(count):
            layers.append(make_layer(n_in))
            n_in = layers[-1].n_out
        self.layers = nn.Sequential(*layers)
        self.n_out = n_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TokenStackModel(CTRModel):
    """Embeddings (sequences mean-pooled into tokens) -> a body [B, n, d] -> [B, n_out, d]
    -> over-arch: the shape Wukong and DHEN share."""

    def __init__(
        self,
        spec: FeatureSpec,
        config: ModelConfig,
        make_body: Callable[[int, ModelConfig], nn.Module],
    ) -> None:
        super().__init__(spec, config)
        self.embedding = EmbeddingArch(spec, config, pool_sequences=True)
        self.body = make_body(self.embedding.num_tokens, config)
        self.over = OverArch(self.body.n_out * config.dim, config)

    def forward(self, batch) -> torch.Tensor:
        batch = self.prepare(batch)
        return self.over(self.body(self.embedding(batch)).flatten(1))
