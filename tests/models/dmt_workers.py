"""What each rank runs in the distributed DMT test (importable by spawned processes)."""

from __future__ import annotations

import torch

from recperf.distributed import Topology
from recperf.models import FeatureSpec, SequenceSpec, build_model
from recperf.models.counting import example_batch
from recperf.models.dmt_distributed import DistributedDMT

SPEC = FeatureSpec(
    ("d0", "d1", "d2"),
    ("s0", "s1", "s2", "s3", "s4"),
    (7, 11, 13, 3, 29),
    (SequenceSpec("history", 17, 6),),
)
ROWS_PER_RANK = 3


def reference(backbone: str, world_size: int):
    """The single-process DMT's logits and gradients of the global mean loss."""
    torch.manual_seed(0)
    model = build_model("dmt", SPEC, dim=8, backbone=backbone, towers=2)
    batch = example_batch(SPEC, ROWS_PER_RANK * world_size, seed=5)
    logits = model(batch)
    model.loss(batch).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def distributed_step(rank: int, world_size: int, backbone: str, local_size: int):
    """This rank's logits, and the synced gradients of the parameters it owns."""
    torch.manual_seed(0)  # every rank builds the same replica
    model = build_model("dmt", SPEC, dim=8, backbone=backbone, towers=2)
    dmt = DistributedDMT(model, Topology(local_size=local_size))
    batch = example_batch(SPEC, ROWS_PER_RANK * world_size, seed=5)
    logits = dmt(batch)
    dmt.loss(batch).backward()
    dmt.sync_gradients()
    owned = {id(p) for p in dmt.owned_parameters()}
    grads = {n: p.grad.numpy() for n, p in model.named_parameters() if id(p) in owned}
    # numpy pickles by value: a tensor would travel as a shared-memory handle that dies
    # with this process.
    return logits.detach().numpy(), grads
