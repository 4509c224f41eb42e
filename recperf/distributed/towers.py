"""DMT (Disaggregated Multi-Tower): the semantic-preserving tower transform, and (from
tower_partitioner.py) the tower partitioner.

Features are assigned to towers, one tower per host; a tower's embedding tables are
sharded over its host's L ranks. Per step, with W = H x L ranks and B samples per rank:

1. Each rank looks up its own tables for the whole global batch: lookups [W B, f, D], rows
   grouped by the rank that owns the sample (rank d's B samples at rows d B .. d B + B).
2. Inside the host: local rank l gathers, from its L - 1 peers, the host's features for
   the samples of every rank with local rank l (H B samples): [H B, F_t, D], the whole
   tower for those samples.
3. The tower module runs there: [H B, F_t, D] -> [H B, O_t] (e.g. a projection that
   compresses the tower; the identity keeps F_t D).
4. Along the rail: only the tower outputs cross hosts; rank (h, l) receives from every
   host h' its tower's [B, O_h'] for its own samples: output [B, sum of O_t].

With identity tower modules the output is the flat model's [B, F, D] embeddings with the
features in tower order (:meth:`TowerTransform.restore_feature_order` puts them back):
the same bits. Cross-host bytes shrink by the towers' compression (sum O_t vs F D).

Tower modules are replicated on the L ranks of their host, each seeing different samples:
their parameter gradients must be averaged over the host (data parallel within the host),
which the model does (later work), not this transform.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import nn

from recperf.distributed.agreement import agree, check_int, validated
from recperf.distributed.block_exchange import exchange_blocks
from recperf.distributed.compress import Codec, get_codec
from recperf.distributed.exchange_plan import dtype_id, dtype_name
from recperf.distributed.topology import Topology
from recperf.distributed.tower_partitioner import (
    BalanceReport,
    FeatureCost,
    TowerPartition,
    balance_report,
    feature_affinity,
    partition_towers,
)
from recperf.ops.a2a import permute_chunks

__all__ = [
    "BalanceReport",
    "FeatureCost",
    "FlattenTower",
    "LinearTower",
    "TowerPartition",
    "TowerTransform",
    "balance_report",
    "feature_affinity",
    "partition_towers",
]


class FlattenTower(nn.Module):
    """The identity tower: [N, F_t, D] -> [N, F_t D]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class LinearTower(nn.Module):
    """A compressing tower: [N, F_t, D] -> [N, out_features] by one linear layer over the
    flattened tower."""

    def __init__(self, num_features: int, dim: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.proj = nn.Linear(num_features * dim, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))


class TowerTransform(nn.Module):
    """One rank's part of the tower transform (module docstring).

    Args:
        partition: one tower per host (tower t on host t); the same on every rank.
        topology: the H x L topology; construction is collective over it.
        dim: embedding dimension D.
        tower_module: this host's tower module, [N, F_t, D] -> [N, out_features]
            (default :class:`FlattenTower`, the identity).
        out_features: its output width O_t (default F_t D, the identity's).
        costs: per-feature costs, to balance the tables over the host's ranks.
        compress: None, "bf16" or "fp8": the cross-host payload's format.

    ``features`` lists the features whose lookups this rank provides (its shard), in the
    order ``forward`` expects them; ``output_features`` the features of the output's
    columns, in order (meaningful for identity towers).
    """

    def __init__(
        self,
        partition: TowerPartition,
        topology: Topology,
        dim: int,
        tower_module: nn.Module | None = None,
        out_features: int | None = None,
        costs: Sequence[FeatureCost] | None = None,
        compress: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(topology, Topology):  # no group to agree over: raised alone
            raise TypeError(f"topology must be a Topology, got {type(topology).__name__}")
        H, L = topology.num_hosts, topology.local_size
        self.topology = topology

        def local():  # this rank's arguments (agreed on below, before any data moves)
            codec = get_codec(compress)
            dim_ = check_int(dim, "dim", 1)
            if not isinstance(partition, TowerPartition):
                raise TypeError(
                    f"partition must be a TowerPartition, got {type(partition).__name__}"
                )
            if partition.num_towers != H:
                raise ValueError(
                    f"the partition must have one tower per host ({H}), got "
                    f"{partition.num_towers} towers"
                )
            if tower_module is not None and not isinstance(tower_module, nn.Module):
                raise TypeError(
                    f"tower_module must be an nn.Module or None, got {type(tower_module).__name__}"
                )
            shards = [partition.shards(t, L, costs) for t in range(H)]
            own = len(partition.towers[topology.host])
            width = own * dim_ if out_features is None else check_int(out_features, "out_features")
            return codec, dim_, shards, width

        codec, checked_dim, shards, width, error = Codec(), 0, [], 0, None
        try:
            codec, checked_dim, shards, width = local()
        except Exception as e:  # agree() raises it on every rank
            error = e
        # Every rank learns every tower's output width, and that all have the same towers.
        fingerprint = zlib.crc32(repr(getattr(partition, "towers", None)).encode())
        rows = agree(
            error, topology.group, topology.meta_device, "TowerTransform", [fingerprint, width]
        )
        if len({row[0] for row in rows}) != 1:
            raise ValueError("TowerTransform: the partition must be the same on every rank")
        self.codec, self.dim, self.shards = codec, checked_dim, shards
        self.tower_widths = [rows[h * L][1] for h in range(H)]
        for r, row in enumerate(rows):
            if row[1] != self.tower_widths[r // L]:
                raise ValueError(
                    f"TowerTransform: the ranks of host {r // L} disagree on the tower's "
                    f"out_features: {[rows[r // L * L + m][1] for m in range(L)]}"
                )
        self.tower = tower_module if tower_module is not None else FlattenTower()
        self.features = self.shards[topology.host][topology.local_rank]
        self.output_features = [f for t in range(H) for shard in self.shards[t] for f in shard]

    def _check_lookups(self, lookups) -> list[int]:
        """[B, dtype id] of this rank's valid lookups (else a ValueError / TypeError)."""
        W = self.topology.world_size
        if not isinstance(lookups, torch.Tensor):
            raise TypeError(f"lookups must be a torch.Tensor, got {type(lookups).__name__}")
        self.topology.check_device(lookups, "lookups")
        if not lookups.dtype.is_floating_point:
            raise TypeError(f"lookups must be a floating-point tensor, got {lookups.dtype}")
        expected = (len(self.features), self.dim)
        if lookups.dim() != 3 or lookups.shape[0] % W or tuple(lookups.shape[1:]) != expected:
            raise ValueError(
                f"lookups must be [W B, its feature count, dim] = [{W} B, {expected[0]}, "
                f"{expected[1]}], got {list(lookups.shape)}"
            )
        return [lookups.shape[0] // W, dtype_id(lookups.dtype)]

    def forward(self, lookups: torch.Tensor) -> torch.Tensor:
        """lookups [W B, len(self.features), D] (rows by owning rank) -> [B, sum O_t]."""
        top = self.topology
        H, L, W = top.num_hosts, top.local_size, top.world_size
        values, error = [0, 0], None
        try:
            values = self._check_lookups(lookups)
        except Exception as e:  # agree() raises it on every rank
            error = e
        rows = agree(error, top.group, top.meta_device, "TowerTransform", values)
        if len({tuple(row) for row in rows}) != 1:
            raise ValueError(
                "TowerTransform: every rank must pass lookups with the same B and dtype; "
                f"(B, dtype) per rank {[(b, dtype_name(d)) for b, d in rows]}"
            )
        B = rows[0][0]
        counters = top.counters["tower"]
        counters.exchanges += 1
        # Step 2: to local peer m, the rows of ranks (h', m) for every host h'.
        order = [h * L + m for m in range(L) for h in range(H)]
        packed = permute_chunks(
            lookups,
            torch.full((W,), B, dtype=torch.int64),
            torch.tensor(order, dtype=torch.int64),
        )
        host_shards = self.shards[top.host]
        recv = [(H * B, len(host_shards[m]), self.dim) for m in range(L)]
        pieces = exchange_blocks(
            list(packed.split([H * B] * L)), recv, top.intra_group, counters=counters
        )
        tower_input = torch.cat(pieces, dim=1)  # [H B, F_t, D], rows by host then sample

        # Step 3: the tower module (a failure or a wrong shape is agreed on, too).
        def run_tower() -> torch.Tensor:
            out = self.tower(tower_input)
            expected = (H * B, self.tower_widths[top.host])
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"the tower module returned {got}, expected {expected} (out_features)"
                )
            return out

        out = validated(run_tower, top.group, top.meta_device, "TowerTransform")
        # Step 4: only the tower outputs cross hosts.
        recv = [(B, self.tower_widths[h]) for h in range(H)]
        pieces = exchange_blocks(
            list(out.split([B] * H)),
            recv,
            top.rail_group,
            codec=self.codec,
            counters=counters,
            cross_host=True,
        )
        return torch.cat(pieces, dim=1)

    def restore_feature_order(self, output: torch.Tensor) -> torch.Tensor:
        """Identity towers' output [B, F D] as [B, F, D] with features 0..F-1 in order."""
        position = {f: i for i, f in enumerate(self.output_features)}
        index = torch.tensor([position[f] for f in sorted(position)], device=output.device)
        return output.reshape(output.shape[0], -1, self.dim).index_select(1, index)
