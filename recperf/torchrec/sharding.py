"""Shard a recperf model's tables (config ``tables="torchrec"``) with torchrec's
DistributedModelParallel and planner, every table by one sharding type.

torchrec 1.8.0's embedding-bag sharder offers row-wise and table-row-wise sharding only for
a ``cuda`` compute device: on the CPU (gloo) table-wise, column-wise and table-column-wise
run, and another type is refused by name before anything is planned or moved.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

SHARDING_TYPES = {
    "cpu": ("table_wise", "column_wise", "table_column_wise"),
    "cuda": ("table_wise", "column_wise", "table_column_wise", "row_wise", "table_row_wise"),
}


def check_sharding(sharding_type: str, device: torch.device) -> None:
    """ValueError unless torchrec can shard tables ``sharding_type`` on ``device``.

    The arguments are the same on every rank (the caller's), so each rank refuses alike
    without a collective; switch to recperf.distributed's collective validation when a
    check depends on rank-local state."""
    allowed = SHARDING_TYPES.get(device.type)
    if allowed is None:
        raise ValueError(f"device must be cpu or cuda, got {device}")
    if sharding_type not in allowed:
        raise ValueError(
            f"sharding_type {sharding_type!r} does not run on {device.type} in torchrec 1.8.0; "
            f"choose one of {allowed}"
        )


def shard_model(
    model: nn.Module,
    sharding_type: str = "table_wise",
    local_world_size: int | None = None,
    device: torch.device | str = "cpu",
    pg: dist.ProcessGroup | None = None,
    fused_params: dict | None = None,
):
    """``DistributedModelParallel`` of ``model`` with every table of its
    EmbeddingBagCollection sharded ``sharding_type`` (planner topology: the group's world
    size, ``local_world_size`` ranks per host); ``fused_params`` set torchrec's fused table
    optimizer (e.g. fbgemm_gpu ``{"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.1}``)."""
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
    from torchrec.distributed.planner.types import ParameterConstraints

    from recperf.torchrec.embedding import TorchRecTables

    device = torch.device(device)
    check_sharding(sharding_type, device)
    tables = [m for m in model.modules() if isinstance(m, TorchRecTables)]
    if not tables:
        raise ValueError("model has no torchrec tables: build it with tables='torchrec'")
    pg = pg or dist.GroupMember.WORLD
    world = dist.get_world_size(pg)
    names = [c.name for t in tables for c in t.ebc.embedding_bag_configs()]
    constraints = {n: ParameterConstraints(sharding_types=[sharding_type]) for n in names}
    topology = Topology(
        world_size=world, compute_device=device.type, local_world_size=local_world_size or world
    )
    sharders = [EmbeddingBagCollectionSharder(fused_params=fused_params)]
    planner = EmbeddingShardingPlanner(topology=topology, constraints=constraints)
    plan = planner.collective_plan(model, sharders, pg)
    return DistributedModelParallel(model, device=device, plan=plan, sharders=sharders)


def copy_full_weights(dmp: nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Load an unsharded state dict into a DMP model: each local shard of a sharded table
    from the block of the full weight it holds, every other tensor as it is."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    with torch.no_grad():
        for key, t in dmp.state_dict().items():
            src = full[key.removeprefix("module.").removeprefix("_dmp_wrapped_module.")]
            if isinstance(t, ShardedTensor):
                for shard in t.local_shards():
                    (r, c), (h, w) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                    shard.tensor.copy_(src[r : r + h, c : c + w])
            else:
                t.copy_(src)


def local_table_bytes(dmp: nn.Module) -> int:
    """Bytes of table weights this rank holds."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    total = 0
    for t in dmp.state_dict().values():
        if isinstance(t, ShardedTensor):
            total += sum(s.tensor.numel() * s.tensor.element_size() for s in t.local_shards())
    return total
