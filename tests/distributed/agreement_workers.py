"""What each rank runs in test_agreement.py: every public distributed entry point called
with a bad argument on ONE rank only. Each case returns what this rank raised (type,
text, seconds); the test asserts every rank raised the same, quickly."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from workers import check_forward_cases

from recperf.distributed import (
    LinearTower,
    Topology,
    TowerTransform,
    flat_all_to_all_single,
    hierarchical_all_to_all,
    hierarchical_all_to_all_single,
    partition_towers,
)
from recperf.distributed.agreement import agree
from recperf.distributed.tower_partitioner import FeatureCost

# The rank each case breaks, and what every rank's error must contain (a 2 x 2 world).
BIG = 2**64
EXPECTED = {
    "topology local_size 2**64": (
        ValueError,
        f"Topology: rank 1: local_size must be in [1, 4], got {BIG}",
    ),
    "topology timeout": (TypeError, "Topology: rank 2: timeout must be a datetime.timedelta"),
    "split 2**64": (
        ValueError,
        "hierarchical_all_to_all_single: rank 1: input_split_sizes[0] must be in "
        f"[0, 9223372036854775807], got {BIG}",
    ),
    "negative total": (
        ValueError,
        "hierarchical_all_to_all: rank 3: output_split_sizes[0] must be in [0, "
        "9223372036854775807], got -5",
    ),
    "compress zip": (
        ValueError,
        "hierarchical_all_to_all: rank 1: compress must be None, 'bf16' or 'fp8', got 'zip'",
    ),
    "meta input": (
        ValueError,
        "hierarchical_all_to_all_single: rank 2: input must be on cpu or cuda (the gloo "
        "group's devices), got meta",
    ),
    "meta input functional": (ValueError, "hierarchical_all_to_all: rank 0: input must be on"),
    "async bad splits": (
        ValueError,
        "hierarchical_all_to_all_single: rank 3: input_split_sizes sum to 5 but input has 4 rows",
    ),
    "not a tensor": (
        TypeError,
        "hierarchical_all_to_all_single: rank 1: input must be a torch.Tensor, got list",
    ),
    "output aliases input": (
        ValueError,
        "hierarchical_all_to_all_single: rank 0: output and input share memory",
    ),
    "output aliases input on every rank": (
        ValueError,
        "hierarchical_all_to_all_single: rank 0: output and input share memory (output "
        "aliases input?): the exchange needs an output of its own (ranks [0, 1, 2, 3] failed)",
    ),
    "output aliases input, 4 hosts x 1": (
        ValueError,
        "hierarchical_all_to_all_single: rank 0: output and input share memory",
    ),
    "expanded output": (
        ValueError,
        "hierarchical_all_to_all_single: rank 2: output has elements that share memory",
    ),
    "flat bad splits": (
        TypeError,
        "flat_all_to_all_single: rank 1: input_split_sizes[2] must be an integer, got float",
    ),
    "towers compress zip": (ValueError, "TowerTransform: rank 3: compress must be None"),
    "towers out_features 2**64": (
        ValueError,
        f"TowerTransform: rank 1: out_features must be in [0, 9223372036854775807], got {BIG}",
    ),
    "towers meta lookups": (
        ValueError,
        "TowerTransform: rank 2: lookups must be on cpu or cuda (the gloo group's devices), "
        "got meta",
    ),
    "towers wrong shape": (
        ValueError,
        "TowerTransform: rank 1: lookups must be [W B, its feature count, dim] = [4 B, ",
    ),
    "tower module fails": (
        RuntimeError,
        "TowerTransform: rank 3: ZeroDivisionError: a tower module failing on one rank",
    ),
    "dmt compress zip": (ValueError, "DistributedDMT: rank 2: compress must be None"),
    "dmt dense dtype": (TypeError, "DistributedDMT: rank 1: dense must be floating point"),
    # Whatever the batch check raises for a meta batch (the models' own check decides).
    "dmt meta batch": ((RuntimeError, TypeError, ValueError), "DistributedDMT: rank 3: "),
    "dmt no labels": (ValueError, "DistributedDMT: rank 0: batch has no labels"),
    "agree message of the lowest rank": (
        ValueError,
        "agree: rank 1: rank 1's message (ranks [1, 3] failed)",
    ),
}


def _dmt(towers: int = 2):
    from recperf.models import FeatureSpec, build_model

    spec = FeatureSpec(("d0", "d1"), ("s0", "s1", "s2", "s3", "s4", "s5"), (5, 7, 11, 3, 2, 9))
    torch.manual_seed(0)
    return spec, build_model("dmt", spec, dim=4, towers=towers, backbone="dhen")


def cases(rank: int, W: int, topology: Topology) -> dict:
    """name -> a call every rank makes, bad on one rank."""
    from datetime import timedelta

    from recperf.models.counting import example_batch
    from recperf.models.dmt_distributed import DistributedDMT

    x = torch.arange(W * 2, dtype=torch.float32).reshape(W, 2)
    good = [1] * W
    out = torch.empty_like(x)
    H = topology.num_hosts
    one_per_host = Topology(local_size=1)  # where an aliased output came back wrong
    costs = [FeatureCost(embedding_bytes=16) for _ in range(6)]
    partition = partition_towers(H, costs, seed=0)
    transform = TowerTransform(partition, topology, 4, costs=costs)
    lookups = torch.randn(W * 2, len(transform.features), 4)
    spec, model = _dmt()
    dmt = DistributedDMT(model, topology)
    batch = example_batch(spec, 2 * W, seed=1)

    def bad_on(r, bad, fine):
        return bad if rank == r else fine

    class Failing(torch.nn.Module):
        def forward(self, t):
            if rank == 3:
                raise ZeroDivisionError("a tower module failing on one rank")
            return t.flatten(1)

    failing = TowerTransform(partition, topology, 4, tower_module=Failing(), costs=costs)

    def dmt_batch(r, change):
        return change(batch) if rank == r else batch

    def agree_case():
        mine = ValueError(f"rank {rank}'s message") if rank in (1, 3) else None
        agree(mine, topology.group, topology.meta_device, "agree")

    return {
        "topology local_size 2**64": lambda: Topology(local_size=bad_on(1, BIG, 2)),
        "topology timeout": lambda: Topology(
            local_size=2, timeout=bad_on(2, "5s", timedelta(seconds=5))
        ),
        "split 2**64": lambda: hierarchical_all_to_all_single(
            out, x, good, bad_on(1, [BIG, 1, 1, 1], good), topology
        ),
        "negative total": lambda: hierarchical_all_to_all(
            x, bad_on(3, [-5, 1, 1, 1], good), good, topology
        ),
        "compress zip": lambda: hierarchical_all_to_all(
            x, good, good, topology, compress=bad_on(1, "zip", "bf16")
        ),
        "meta input": lambda: hierarchical_all_to_all_single(
            bad_on(2, out.to("meta"), out), bad_on(2, x.to("meta"), x), good, good, topology
        ),
        "meta input functional": lambda: hierarchical_all_to_all(
            bad_on(0, x.to("meta"), x), good, good, topology
        ),
        "async bad splits": lambda: hierarchical_all_to_all_single(
            out, x, good, bad_on(3, [2, 1, 1, 1], good), topology, async_op=True
        ).wait(),
        "not a tensor": lambda: hierarchical_all_to_all_single(
            out, bad_on(1, x.tolist(), x), good, good, topology
        ),
        "output aliases input": lambda: hierarchical_all_to_all_single(
            bad_on(0, x, out), x, good, good, topology
        ),
        "output aliases input on every rank": lambda: hierarchical_all_to_all_single(
            x, x, good, good, topology
        ),
        "output aliases input, 4 hosts x 1": lambda: hierarchical_all_to_all_single(
            x, x, good, good, one_per_host
        ),
        "expanded output": lambda: hierarchical_all_to_all_single(
            bad_on(2, torch.zeros(1, 2).expand(W, 2), out), x, good, good, topology
        ),
        "flat bad splits": lambda: flat_all_to_all_single(
            out, x, good, bad_on(1, [1, 1, 1.0, 1], good), topology
        ),
        "towers compress zip": lambda: TowerTransform(
            partition, topology, 4, costs=costs, compress=bad_on(3, "zip", None)
        ),
        "towers out_features 2**64": lambda: TowerTransform(
            partition,
            topology,
            4,
            tower_module=LinearTower(len(partition.towers[topology.host]), 4, 8),
            out_features=bad_on(1, BIG, 8),
            costs=costs,
        ),
        "towers meta lookups": lambda: transform(bad_on(2, lookups.to("meta"), lookups)),
        "towers wrong shape": lambda: transform(bad_on(1, lookups[:, :, :3], lookups)),
        "tower module fails": lambda: failing(lookups),
        "dmt compress zip": lambda: DistributedDMT(model, topology, bad_on(2, "zip", None)),
        "dmt dense dtype": lambda: dmt(
            dmt_batch(1, lambda b: type(b)(b.dense.to(torch.int64), *_rest(b)))
        ),
        "dmt meta batch": lambda: dmt(dmt_batch(3, lambda b: b.to("meta"))),
        "dmt no labels": lambda: dmt.loss(
            dmt_batch(0, lambda b: type(b)(b.dense, b.ids, b.offsets, None))
        ),
        "agree message of the lowest rank": agree_case,
    }


def _rest(b):
    return b.ids, b.offsets, b.labels, b.seq_ids, b.seq_lengths


# Cases that move data before they fail (the first exchange of a process pays a warm-up
# of seconds): the slow test's.
MOVES_DATA = frozenset({"tower module fails"})


def one_rank_wrong(rank: int, W: int, names: list[str], then_exchange: bool) -> tuple:
    """Each named case's (error type, text, seconds) on this rank; then the group must still
    work: an all_reduce, or (``then_exchange``) a good exchange and DMT's empty batch."""
    topology = Topology(local_size=2)
    report = {}
    calls = cases(rank, W, topology)
    for name in names:
        start = time.monotonic()
        try:
            calls[name]()
            report[name] = ("no error", "", time.monotonic() - start)
        except Exception as e:
            report[name] = (type(e).__name__, str(e), time.monotonic() - start)
    failures: list[str] = []
    total = torch.ones(1)
    dist.all_reduce(total)
    if total.item() != W:
        failures.append(f"all_reduce after the bad calls: {total.item()}")
    if then_exchange:
        check_forward_cases(topology, rank, W, [(torch.float32, (2,))], failures, seed0=7)
        from recperf.models.counting import example_batch
        from recperf.models.dmt_distributed import DistributedDMT

        spec, model = _dmt()
        logits = DistributedDMT(model, topology)(example_batch(spec, 0, seed=2))
        if logits.shape != (0,):
            failures.append(f"DMT empty global batch: logits {tuple(logits.shape)}")
    return report, failures
