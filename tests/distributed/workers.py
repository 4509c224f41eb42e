"""What the ranks of the multi-process tests run (importable by the spawned processes).
Each check appends a description of what went wrong to a list the test asserts empty, so
one spawned group runs many checks and reports every failure at once."""

from __future__ import annotations

import os
import random
import time

import torch
import torch.distributed as dist

import recperf.distributed.all_to_all as a2a_module
from recperf.distributed import (
    LinearTower,
    Topology,
    TowerTransform,
    compression_error,
    flat_all_to_all_single,
    hierarchical_all_to_all,
    hierarchical_all_to_all_single,
    partition_towers,
)
from recperf.distributed.compress import get_codec
from recperf.distributed.tower_partitioner import FeatureCost

DTYPES = [torch.float32, torch.bfloat16, torch.float8_e4m3fn, torch.int64, torch.bool]
TRAILING = [(), (3,), (2, 5)]


def split_matrix(W: int, seed: int, zero_fraction: float = 0.3) -> list[list[int]]:
    """The same random uneven split matrix on every rank (S[i][j]: rows i sends j)."""
    rng = random.Random(seed)
    return [
        [0 if rng.random() < zero_fraction else rng.randint(1, 5) for _ in range(W)]
        for _ in range(W)
    ]


def rows_of(n: int, trailing, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *trailing, generator=g) * 4
    if dtype == torch.bool:
        return x > 0
    if dtype == torch.int64:
        return (x * 1000).to(torch.int64)
    return x.to(dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def flat(topology, x, out_splits, in_splits):
    """The reference: torch.distributed.all_to_all_single itself, on a byte view only for
    the dtypes gloo does not carry (FP8)."""
    out = x.new_empty((sum(out_splits), *x.shape[1:]))
    if x.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        flat_all_to_all_single(out, x, out_splits, in_splits, topology)
    else:
        dist.all_to_all_single(out, x.contiguous(), out_splits, in_splits, group=topology.group)
    return out


def check_forward_cases(topology, rank, W, cases, failures, seed0=0):
    for i, (dtype, trailing) in enumerate(cases):
        S = split_matrix(W, seed=seed0 + i, zero_fraction=[0.0, 0.3, 0.7][i % 3])
        ins, outs = S[rank], [S[j][rank] for j in range(W)]
        x = rows_of(sum(ins), trailing, dtype, seed=1000 * i + rank)
        expected = flat(topology, x, outs, ins)
        got = x.new_empty(expected.shape)
        hierarchical_all_to_all_single(got, x, outs, ins, topology)
        if not same_bits(got, expected):
            failures.append(f"forward {dtype} {trailing} splits {S}")


def check_backward(topology, rank, W, failures, dtype=torch.float32, trailing=(4,), seed=77):
    S = split_matrix(W, seed=seed)
    ins, outs = S[rank], [S[j][rank] for j in range(W)]
    x = rows_of(sum(ins), trailing, dtype, seed=seed + rank).requires_grad_(True)
    out = hierarchical_all_to_all(x, outs, ins, topology)
    grad = rows_of(out.shape[0], trailing, dtype, seed=seed + 100 + rank)
    out.backward(grad)
    expected_out = flat(topology, x.detach(), outs, ins)
    expected_grad = flat(topology, grad, ins, outs)  # the reverse exchange
    if not same_bits(out.detach(), expected_out):
        failures.append(f"functional forward {dtype} {trailing}")
    if not same_bits(x.grad, expected_grad):
        failures.append(f"backward {dtype} {trailing}")


def check_counters(topology, rank, W, failures):
    H, L = topology.num_hosts, topology.local_size
    S = split_matrix(W, seed=5, zero_fraction=0.0)
    ins, outs = S[rank], [S[j][rank] for j in range(W)]
    x = rows_of(sum(ins), (8,), torch.float32, seed=rank)
    topology.reset_counters()
    out = x.new_empty((sum(outs), 8))
    hierarchical_all_to_all_single(out, x, outs, ins, topology)
    flat_all_to_all_single(torch.empty_like(out), x, outs, ins, topology)
    hier, base = topology.counters["hierarchical"], topology.counters["flat"]
    expected = {
        "hierarchical cross-host messages": (hier.cross_host_messages, H - 1),
        "hierarchical intra-host messages": (hier.intra_host_messages, L - 1),
        "flat cross-host messages": (base.cross_host_messages, L * (H - 1)),
        "flat intra-host messages": (base.intra_host_messages, L - 1),
    }
    for what, (got, want) in expected.items():
        if got != want:
            failures.append(f"{what}: {got}, expected {want}")
    # Over all ranks the same bytes cross hosts, only in fewer, larger messages.
    totals = torch.tensor([hier.cross_host_bytes, base.cross_host_bytes], dtype=torch.int64)
    dist.all_reduce(totals, group=topology.group)
    if totals[0] != totals[1] or totals[0] == 0:
        failures.append(
            f"cross-host bytes over all ranks: hierarchical {totals[0]}, flat {totals[1]}"
        )


def check_async_and_layouts(topology, rank, W, failures):
    S = split_matrix(W, seed=11)
    ins, outs = S[rank], [S[j][rank] for j in range(W)]
    x = rows_of(sum(ins), (3, 2), torch.float32, seed=rank)
    expected = flat(topology, x, outs, ins)
    got = torch.empty_like(expected)
    handle = hierarchical_all_to_all_single(got, x, outs, ins, topology, async_op=True)
    overlap = torch.randn(64, 64) @ torch.randn(64, 64)  # work while the exchange runs
    handle.wait()
    if not (handle.is_completed() and same_bits(got, expected)) or overlap.shape != (64, 64):
        failures.append("async exchange")
    # Non-contiguous input and output.
    x_nc = torch.randn(2, sum(ins), generator=torch.Generator().manual_seed(rank)).t()
    out_nc = torch.empty(2, sum(outs)).t()
    hierarchical_all_to_all_single(out_nc, x_nc, outs, ins, topology)
    if not same_bits(out_nc, flat(topology, x_nc.contiguous(), outs, ins)):
        failures.append("non-contiguous input/output")
    # Equal splits (None), as all_to_all_single.
    x = rows_of(2 * W, (5,), torch.float16, seed=rank)
    got = torch.empty_like(x)
    hierarchical_all_to_all_single(got, x, topology=topology)
    if not same_bits(got, flat(topology, x, [2] * W, [2] * W)):
        failures.append("equal splits")
    # The default topology, from torchrun's LOCAL_WORLD_SIZE.
    os.environ["LOCAL_WORLD_SIZE"] = str(topology.local_size)
    got = torch.empty_like(x)
    hierarchical_all_to_all_single(got, x)
    if not same_bits(got, flat(topology, x, [2] * W, [2] * W)):
        failures.append("default topology")


def check_compressed(topology, rank, W, failures):
    S = split_matrix(W, seed=21)
    ins, outs = S[rank], [S[j][rank] for j in range(W)]
    x = rows_of(sum(ins), (3, 16), torch.float32, seed=rank)
    for compress in ("bf16", "fp8"):
        codec = get_codec(compress)
        out = hierarchical_all_to_all(x, outs, ins, topology, compress=compress)
        # Row-wise codecs commute with the exchange: the result is the flat exchange of
        # the rows' local round trip, exactly.
        round_trip = codec.decode(codec.encode(x), x.dtype, (3, 16))
        if not same_bits(out, flat(topology, round_trip, outs, ins)):
            failures.append(f"compressed exchange {compress}")
        err = compression_error(torch.randn(256, 64), compress)
        limit = {"bf16": (3e-3, 45.0), "fp8": (6e-2, 25.0)}[compress]
        if not (err.rel_error < limit[0] and err.sqnr_db > limit[1]):
            failures.append(f"compression error {err}")
        xl = x.clone().requires_grad_(True)
        hierarchical_all_to_all(xl, outs, ins, topology, compress=compress).sum().backward()
        if xl.grad is None or xl.grad.shape != x.shape or not (xl.grad == 1).all():
            failures.append(f"compressed backward {compress}")  # ones survive both codecs


def check_bad_calls(topology, rank, W, failures):
    """Each bad call must raise the same ValueError on every rank, and the group must still
    work afterwards (nobody left waiting)."""
    x = torch.zeros(W, 2)
    good = [1] * W
    calls = {  # name: (input splits, output splits, what every rank's error must say)
        "sum": (
            [W + 1] + [1] * (W - 1) if rank == 1 else good,
            good,
            f"rank 1: input_split_sizes sum to {2 * W} but input has {W} rows",
        ),
        "disagree": (
            good,
            [2, 0, *[1] * (W - 2)] if rank == 0 else good,
            "rank 0 sends 1 rows to rank 0 (its input_split_sizes[0]) but rank 0 expects 2",
        ),
        "length": (
            good,
            good[:-1] if rank == W - 1 else good,
            f"rank {W - 1}: output_split_sizes must have one entry per rank ({W}), got {W - 1}",
        ),
    }
    for name, (in_splits, out_splits, expected) in calls.items():
        out = torch.zeros(sum(out_splits), 2)
        try:
            hierarchical_all_to_all_single(out, x, out_splits, in_splits, topology)
            message = None
        except ValueError as e:
            message = str(e)
        every = [None] * W
        dist.all_gather_object(every, message, group=topology.group)
        if message is None or len(set(every)) != 1 or expected not in message:
            failures.append(f"bad call {name}: messages per rank {every}")
    check_forward_cases(topology, rank, W, [(torch.float32, (2,))], failures, seed0=99)


def check_towers(topology, rank, W, failures, B=3, D=4, F=10):
    H = topology.num_hosts
    costs = [FeatureCost(embedding_bytes=4 * D, pooling_factor=1 + f % 3) for f in range(F)]
    partition = partition_towers(H, costs, seed=3)
    transform = TowerTransform(partition, topology, D, costs=costs)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(W * B, F, D, generator=g)  # every sample's embeddings (global)
    lookups = table[:, transform.features].clone().requires_grad_(True)
    topology.reset_counters()
    out = transform(lookups)
    mine = table[rank * B : (rank + 1) * B]
    if not same_bits(transform.restore_feature_order(out.detach()), mine):
        failures.append("identity towers != flat embeddings")
    grad_table = torch.randn(W * B, F, D, generator=g)
    position = {f: i for i, f in enumerate(transform.output_features)}
    grad_out = grad_table[rank * B : (rank + 1) * B][:, sorted(position, key=position.get)]
    out.backward(grad_out.reshape(B, -1))
    if not same_bits(lookups.grad, grad_table[:, transform.features]):
        failures.append("identity towers backward")
    counters = topology.counters["tower"]
    if counters.cross_host_messages != 2 * (H - 1):  # forward and backward
        failures.append(f"tower cross-host messages {counters.cross_host_messages}")
    # A compressing tower: only [B, 8] per host crosses, in fp8.
    torch.manual_seed(100 + topology.host)
    tower = LinearTower(len(partition.towers[topology.host]), D, 8)
    compressed = TowerTransform(
        partition, topology, D, tower_module=tower, out_features=8, costs=costs, compress="fp8"
    )
    out = compressed(table[:, compressed.features])
    expected = []
    for h in range(H):
        torch.manual_seed(100 + h)
        ref_tower = LinearTower(len(partition.towers[h]), D, 8)
        feats = [f for shard in compressed.shards[h] for f in shard]
        expected.append(ref_tower(mine[:, feats]))
    expected = torch.cat(expected, dim=1).detach()
    rel = ((out.detach() - expected).norm() / expected.norm()).item()
    if out.shape != (B, 8 * H) or rel > 0.08:
        failures.append(f"compressing tower: shape {tuple(out.shape)}, fp8 error {rel:.3g}")
    out.sum().backward()
    if tower.proj.weight.grad is None:
        failures.append("compressing tower: no gradient reached the tower module")


def run_suite(rank, W, local_size, forward_cases, heavy=True):
    topology = Topology(local_size=local_size)
    failures: list[str] = []
    check_forward_cases(topology, rank, W, forward_cases, failures)
    check_backward(topology, rank, W, failures)
    check_backward(topology, rank, W, failures, dtype=torch.bfloat16, trailing=(2, 3), seed=78)
    check_counters(topology, rank, W, failures)
    check_bad_calls(topology, rank, W, failures)
    check_towers(topology, rank, W, failures)
    if heavy:
        check_async_and_layouts(topology, rank, W, failures)
        check_compressed(topology, rank, W, failures)
    return failures


def edge_topologies(rank, W):
    """Topologies that cannot be (every rank must raise the same error, none hang), then
    the degenerate ones that can: one host of W ranks, W hosts of one rank."""
    messages = []
    for local_size in (4, 1 + rank % 2, None):
        os.environ.pop("LOCAL_WORLD_SIZE", None)
        try:
            Topology(local_size=local_size)
            messages.append(None)
        except ValueError as e:
            messages.append(str(e))
    failures: list[str] = []
    cases = [(torch.float32, (3,)), (torch.float8_e5m2, ())]
    for local_size in (W, 1):
        topology = Topology(local_size=local_size)
        check_forward_cases(topology, rank, W, cases, failures, seed0=50)
        check_backward(topology, rank, W, failures)
    return messages, failures


def failing_peer(rank, W, stall_s, timeout_s):
    """2 hosts x 1: rank 1 stalls, then dies, between the steps; what rank 0 sees."""
    from datetime import timedelta

    report = {}
    for mode in ("stall", "die"):
        topology = Topology(local_size=1, timeout=timedelta(seconds=timeout_s))
        if rank == 1:
            a2a_module._between_steps = (
                (lambda: time.sleep(stall_s)) if mode == "stall" else (lambda: os._exit(3))
            )
        x = torch.zeros(4, 2)
        start = time.monotonic()
        try:
            hierarchical_all_to_all_single(torch.empty_like(x), x, [2, 2], [2, 2], topology)
            report[mode] = ("no error", time.monotonic() - start)
        except Exception as e:  # gloo raises RuntimeError / DistBackendError
            report[mode] = (f"{type(e).__name__}: {e}", time.monotonic() - start)
        a2a_module._between_steps = None
    return report
