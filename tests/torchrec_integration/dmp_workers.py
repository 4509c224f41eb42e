"""What each rank runs in the DMP tests (importable by spawned processes): a recperf model
with tables="torchrec", its EBC sharded by DistributedModelParallel with one sharding type,
the unsharded model's weights copied in, one forward/backward on the rank's rows."""

from __future__ import annotations

import torch

from recperf.models import FeatureSpec, SequenceSpec, build_model
from recperf.models.batch import Batch

SPEC = FeatureSpec(
    ("d0", "d1"),
    ("s0", "s1", "s2", "s3", "s4"),
    (7, 11, 13, 3, 29),
    (SequenceSpec("hist", 17, 6),),
)
ROWS_PER_RANK = 3
DIM = 8


def model(name: str):
    torch.manual_seed(0)
    return build_model(name, SPEC, dim=DIM, tables="torchrec")


def global_batch(world: int, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    B = ROWS_PER_RANK * world
    ids, offsets = [], []
    for card in SPEC.cardinalities:
        n = torch.randint(0, 3, (B,), generator=g)
        ids.append(torch.randint(0, card, (int(n.sum()),), generator=g))
        offsets.append(torch.cumsum(n, 0) - n)
    return Batch(
        torch.randn(B, 2, generator=g),
        tuple(ids),
        tuple(offsets),
        torch.randint(0, 2, (B,), generator=g).float(),
        (torch.randint(0, 17, (B, 6), generator=g),),
        (torch.randint(1, 7, (B,), generator=g),),
    )


def rows(batch: Batch, start: int, stop: int) -> Batch:
    ids, offsets = [], []
    for i, off in zip(batch.ids, batch.offsets, strict=True):
        ends = torch.cat((off[1:], off.new_tensor([i.numel()])))
        lo, hi = int(off[start]), int(ends[stop - 1])
        ids.append(i[lo:hi])
        offsets.append(off[start:stop] - lo)
    return Batch(
        batch.dense[start:stop],
        tuple(ids),
        tuple(offsets),
        batch.labels[start:stop],
        tuple(s[start:stop] for s in batch.seq_ids),
        tuple(s[start:stop] for s in batch.seq_lengths),
    )


def reference(name: str, world: int):
    """The unsharded model's logits and table gradients on the global batch (the loss is
    the mean over ranks of each rank's mean loss: equal row counts, so the global mean)."""
    m = model(name)
    batch = global_batch(world)
    logits = m(batch)
    m.loss(batch).backward()
    grads = {k: p.grad.clone() for k, p in m.embedding.tables.ebc.named_parameters()}
    return logits.detach(), grads


def sharded_step(rank: int, world: int, name: str, sharding_type: str, local_size: int):
    """This rank's logits, the sharding types planned, the table bytes it holds."""
    from recperf.torchrec.sharding import copy_full_weights, local_table_bytes, shard_model

    m = model(name)
    full = {k: v.detach().clone() for k, v in m.state_dict().items()}
    dmp = shard_model(m, sharding_type, local_size)
    copy_full_weights(dmp, full)
    batch = rows(global_batch(world), rank * ROWS_PER_RANK, (rank + 1) * ROWS_PER_RANK)
    logits = dmp(batch)
    types = sorted({s.sharding_type for p in dmp.plan.plan.values() for s in p.values()})
    return logits.detach().numpy(), types, local_table_bytes(dmp)


def refused(rank: int, world: int, sharding_type: str) -> str:
    """The error every rank raises for a sharding type the CPU cannot run."""
    from recperf.torchrec.sharding import shard_model

    try:
        shard_model(model("wukong"), sharding_type, 2)
    except ValueError as e:
        return str(e)
    return "no error"


LR, STEPS = 0.05, 20


def reference_losses(name: str, world: int) -> list[float]:
    """The unsharded model trained by SGD on every parameter, a new global batch a step."""
    m = model(name)
    opt = torch.optim.SGD(m.parameters(), lr=LR)
    losses = []
    for step in range(STEPS):
        loss = m.loss(global_batch(world, seed=100 + step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def sharded_losses(rank: int, world: int, name: str, sharding_type: str, local_size: int):
    """This rank's losses on its rows: tables by torchrec's fused exact SGD, the dense part
    by SGD over DDP's averaged grads; torchrec divides the tables' grads by the world size
    (its default), so both halves follow the global mean loss."""
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    from recperf.torchrec.sharding import copy_full_weights, shard_model

    m = model(name)
    full = {k: v.detach().clone() for k, v in m.state_dict().items()}
    fused = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR}
    dmp = shard_model(m, sharding_type, local_size, fused_params=fused)
    copy_full_weights(dmp, full)
    dense = [p for k, p in dmp.named_parameters() if ".ebc." not in k]
    opt = torch.optim.SGD(dense, lr=LR)
    B, losses = ROWS_PER_RANK, []
    for step in range(STEPS):
        batch = rows(global_batch(world, seed=100 + step), rank * B, (rank + 1) * B)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(dmp(batch), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
