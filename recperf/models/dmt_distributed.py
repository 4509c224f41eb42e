"""DMT under torchrun: tower t on host t (see recperf.models.dmt and
recperf.distributed.towers).

Every rank holds a full replica of the :class:`DMT` (the same seed builds the same
weights) but uses only its part: the tables of the features the tower transform assigns
to it, its host's tower module, and the replicated top (dense MLP, body, over-arch).
Each step every rank sees the same global batch of W B rows; rank r owns rows
r B .. r B + B. It looks up its features for all W B rows, the transform gathers the
tower on the host, compresses it there and brings back the compressed tokens of rank r's
own rows, and the top finishes them.

Gradients: each rank's loss is the mean over its B rows; :meth:`sync_gradients` turns
them into the gradient of the mean over all W B rows: the top is averaged over the world,
each tower module summed over its host / W, each table (whose gradient already holds every
rank's rows through the exchange's backward) divided by W.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from recperf.distributed import Topology, TowerTransform
from recperf.distributed.agreement import validated
from recperf.distributed.compress import get_codec
from recperf.models.batch import Batch
from recperf.models.dmt import DMT, gather_tokens


class _Reorder(nn.Module):
    """Feeds a tower module its features in its own (ascending) order: the transform
    gathers them in host-shard order."""

    def __init__(self, tower: nn.Module, order: list[int]) -> None:
        super().__init__()
        self.tower = tower
        canonical = sorted(order)
        self.positions = [order.index(f) for f in canonical]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(gather_tokens(x, self.positions))


def rows(batch: Batch, start: int, stop: int) -> Batch:
    """Rows start..stop of the dense features, labels and sequences (sparse ids stay with
    the global batch: they are looked up by the tables' owners)."""
    return Batch(
        batch.dense[start:stop],
        (),
        (),
        None if batch.labels is None else batch.labels[start:stop],
        tuple(t[start:stop] for t in batch.seq_ids),
        tuple(t[start:stop] for t in batch.seq_lengths),
    )


class DistributedDMT(nn.Module):
    """One rank's part of a DMT (module docstring). Construction is collective, and so is
    each call: a bad model, batch or argument on one rank raises the same error on every
    rank (:func:`recperf.distributed.agreement.agree`) before any data moves."""

    def __init__(self, model: DMT, topology: Topology, compress: str | None = None) -> None:
        super().__init__()
        if not isinstance(topology, Topology):  # no group to agree over: raised alone
            raise TypeError(f"topology must be a Topology, got {type(topology).__name__}")

        def check() -> None:
            if not isinstance(model, DMT):
                raise TypeError(f"model must be a DMT, got {type(model).__name__}")
            get_codec(compress)
            if model.partition.num_towers != topology.num_hosts:
                raise ValueError(
                    f"DistributedDMT needs one tower per host: {model.partition.num_towers} "
                    f"towers, {topology.num_hosts} hosts"
                )
            if model.config.tables != "nn":
                raise ValueError(
                    f"DistributedDMT shards nn tables itself; a model with tables="
                    f"{model.config.tables!r} is sharded by torchrec's DistributedModelParallel"
                )

        validated(check, topology.group, topology.meta_device, "DistributedDMT")
        self.model, self.topology = model, topology
        host, L = topology.host, topology.local_size
        order = [f for shard in model.partition.shards(host, L) for f in shard]
        tower = model.towers[host]
        self.transform = TowerTransform(
            model.partition,
            topology,
            model.config.dim,
            tower_module=_Reorder(tower, order),
            out_features=tower.out_features,
            compress=compress,
        )

    def _lookups(self, batch: Batch, need_labels: bool) -> torch.Tensor:
        """This rank's lookups [W B, its features, D] for the global batch (validated)."""
        model, W = self.model, self.topology.world_size
        if not isinstance(batch, Batch):
            raise TypeError(f"batch must be a Batch, got {type(batch).__name__}")
        model.check(batch)
        if batch.size % W:
            raise ValueError(f"the global batch ({batch.size} rows) must split over {W} ranks")
        if need_labels and batch.labels is None:
            raise ValueError("batch has no labels: the loss needs them")
        emb = model.embedding
        feats = self.transform.features
        if feats:
            return torch.stack([emb.token(batch, f) for f in feats], dim=1)
        return emb.tables[0].weight.new_zeros(batch.size, 0, emb.dim)

    def _forward(self, batch: Batch, need_labels: bool) -> torch.Tensor:
        top = self.topology
        lookups = validated(
            lambda: self._lookups(batch, need_labels), top.group, top.meta_device, "DistributedDMT"
        )
        B = batch.size // top.world_size
        towers = self.transform(lookups)
        mine = rows(batch, top.rank * B, top.rank * B + B)
        return self.model.top(mine, self.model.embedding.dense_token(mine), towers)

    def forward(self, batch: Batch) -> torch.Tensor:
        """The global batch (W B rows) -> logits of this rank's B rows."""
        return self._forward(batch, need_labels=False)

    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self._forward(batch, need_labels=True)
        B = batch.size // self.topology.world_size
        labels = batch.labels[self.topology.rank * B : self.topology.rank * B + B]
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def owned_parameters(self) -> list[nn.Parameter]:
        """What this rank updates: its tables, its host's tower, the top."""
        tower = list(self.model.towers[self.topology.host].parameters())
        return self._tables() + tower + self._top()

    def _tables(self) -> list[nn.Parameter]:
        emb, S = self.model.embedding, self.model.spec.num_sparse
        return [
            (emb.tables[f] if f < S else emb.seq_tables[f - S]).weight
            for f in self.transform.features
        ]

    def _top(self) -> list[nn.Parameter]:
        model, emb = self.model, self.model.embedding
        mods = [model.body, model.over] + ([emb.dense] if emb.dense is not None else [])
        if model.config.backbone == "interformer":
            mods.append(emb.seq_tables)  # sequences are looked up by every rank
        return [p for m in mods for p in m.parameters()]

    @torch.no_grad()
    def sync_gradients(self) -> None:
        """Per-rank gradients -> the gradient of the global mean loss (module docstring)."""
        top, W = self.topology, self.topology.world_size
        for p in self._tables():
            if p.grad is not None:
                p.grad.div_(W)
        for params, group in (
            (list(self.model.towers[top.host].parameters()), top.intra_group),
            (self._top(), top.group),
        ):
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, group=group)
            flat.div_(W)
            for p, g in zip(params, flat.split([q.numel() for q in params]), strict=True):
                p.grad = g.view_as(p).clone()
