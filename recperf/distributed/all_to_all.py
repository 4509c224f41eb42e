"""Hierarchical all-to-all: the result of ``torch.distributed.all_to_all_single``, bit for
bit, in H - 1 cross-host messages per rank instead of L (H - 1).

1. Validate and plan: each rank checks its call, then one all_gather of every rank's
   call and status (exchange_plan.py, agreement.py); a bad call on any rank raises the
   same error on every rank before anything moves.
2. Inside the host: the input's chunks packed by local destination (``permute_chunks``),
   one all_to_all on the host's group; local rank l now holds everything its host sends
   to local rank l of every host.
3. Along the rail: that buffer regrouped by destination host (``permute_chunks``), one
   all_to_all among the H ranks of local rank l, received straight into the output,
   which comes out in source-rank order: the final permutation is the identity.

Rows travel as raw bytes ([rows, row_bytes] uint8 views), so every dtype is exchanged
exactly, FP8 included (gloo carries no FP8 dtype), and NCCL and gloo run the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from recperf.distributed.agreement import agree
from recperf.distributed.compress import CODECS, Codec
from recperf.distributed.exchange_plan import (
    ExchangePlan,
    check_matrix,
    describe,
    plan_from_rows,
    vector_size,
)
from recperf.distributed.topology import ExchangeCounters, Topology, resolve_topology
from recperf.ops.a2a import permute_chunks

Splits = Sequence[int] | torch.Tensor | None

# Test hook: called between the intra-host and the rail step (a test makes a rank die or
# stall there, "mid-exchange").
_between_steps = None


def byte_rows(t: torch.Tensor) -> torch.Tensor:
    """t [R, ...] as a [R, row_bytes] uint8 tensor: a view when t is contiguous."""
    t = t.contiguous()
    row_bytes = t.element_size() * math.prod(t.shape[1:])
    return t.reshape(-1).view(torch.uint8).view(t.shape[0], row_bytes)


def _index(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def plan_exchange(
    topology: Topology,
    input,
    output,
    output_split_sizes: Splits,
    input_split_sizes: Splits,
    compress: str | None,
    what: str,
) -> tuple[ExchangePlan, Codec]:
    """Validate the call on this rank, agree on every rank's (one all_gather), and return
    this rank's plan and codec; any rank's bad call raises the same error on every rank."""
    W = topology.world_size
    vector, codec, error = [0] * vector_size(W), Codec(), None
    try:
        vector, codec = describe(
            input,
            output,
            input_split_sizes,
            output_split_sizes,
            W,
            compress,
            topology.check_device,
        )
    except Exception as e:  # agree() raises it on every rank; alone it would hang the peers
        error = e
    rows = agree(error, topology.group, topology.meta_device, what, vector)
    check_matrix(rows, what, CODECS)
    return plan_from_rows(rows, topology.rank, topology.num_hosts, topology.local_size), codec


def _count(counters: ExchangeCounters, send: list[int], row_bytes: int, me: int, cross: bool):
    peers = [i for i in range(len(send)) if i != me]
    sent = sum(send[i] for i in peers) * row_bytes
    if cross:
        counters.cross_host_bytes += sent
        counters.cross_host_messages += len(peers)
    else:
        counters.intra_host_bytes += sent
        counters.intra_host_messages += len(peers)


def _hierarchical_steps(
    out_bytes: torch.Tensor, in_bytes: torch.Tensor, plan: ExchangePlan, topology: Topology
) -> Iterator[dist.Work]:
    """Fill out_bytes from in_bytes ([rows, row_bytes] uint8); yields each collective in
    flight (the caller waits on it before resuming)."""
    H, L = topology.num_hosts, topology.local_size
    counters = topology.counters["hierarchical"]
    counters.exchanges += 1
    row_bytes = in_bytes.shape[1]
    if row_bytes == 0:  # every rank agrees (validated): nothing to move
        return
    staged = in_bytes
    if L > 1:
        sizes, order = plan.intra_pack()
        packed = permute_chunks(in_bytes, _index(sizes), _index(order))
        recv, send = plan.intra_recv(), plan.intra_send()
        staged = out_bytes if H == 1 else in_bytes.new_empty((sum(recv), row_bytes))
        work = dist.all_to_all_single(
            staged, packed, recv, send, group=topology.intra_group, async_op=True
        )
        _count(counters, send, row_bytes, topology.local_rank, cross=False)
        yield work
    if _between_steps is not None:
        _between_steps()
    if H > 1:
        if L > 1:
            sizes, order = plan.rail_pack()
            staged = permute_chunks(staged, _index(sizes), _index(order))
        send = plan.rail_send()
        work = dist.all_to_all_single(
            out_bytes, staged, plan.rail_recv(), send, group=topology.rail_group, async_op=True
        )
        _count(counters, send, row_bytes, topology.host, cross=True)
        yield work
    elif L == 1:  # a world of one rank
        out_bytes.copy_(in_bytes)


def _exchange(
    output: torch.Tensor,
    input: torch.Tensor,
    plan: ExchangePlan,
    topology: Topology,
    codec: Codec,
) -> Iterator[dist.Work]:
    """The whole exchange into output, codec included; yields the collectives in flight."""
    trailing = tuple(output.shape[1:])
    payload = codec.encode(input)
    direct = codec.name == "none" and output.is_contiguous()
    if direct:
        received = output
    else:
        shape, dtype = codec.payload_meta(tuple(input.shape[1:]), input.dtype)
        received = payload.new_empty((output.shape[0], *shape), dtype=dtype)
    yield from _hierarchical_steps(byte_rows(received), byte_rows(payload), plan, topology)
    if not direct:
        output.copy_(codec.decode(received, output.dtype, trailing).reshape(output.shape))


class ExchangeHandle:
    """An exchange in flight (``async_op=True``): the intra-host step is launched;
    ``wait()`` waits for it, then runs the rail step and waits for that. Lookups or other
    work between the call and ``wait()`` overlap with the intra-host step."""

    def __init__(self, steps: Iterator[dist.Work]) -> None:
        self._steps = steps
        self._work = next(steps, None)

    def wait(self) -> bool:
        while self._work is not None:
            self._work.wait()
            self._work = next(self._steps, None)
        return True

    def is_completed(self) -> bool:
        return self._work is None


def hierarchical_all_to_all_single(
    output: torch.Tensor,
    input: torch.Tensor,
    output_split_sizes: Splits = None,
    input_split_sizes: Splits = None,
    topology: Topology | None = None,
    async_op: bool = False,
    *,
    compress: str | None = None,
) -> ExchangeHandle | None:
    """Fill ``output`` exactly as ``torch.distributed.all_to_all_single(output, input,
    output_split_sizes, input_split_sizes, group=topology.group)`` would, through the
    intra-host and rail groups of ``topology`` (default: the world, L = LOCAL_WORLD_SIZE).

    Rows of any trailing shape and any dtype; splits in rows (None: equal splits), any
    sizes including zero. Every rank validates every rank's call first and all raise the
    same error on a bad one (ValueError, or TypeError for a wrong type or dtype), within
    one collective; an output that aliases input or cannot be written (expanded) is
    refused. ``compress`` ("bf16" or "fp8") sends a narrower payload
    and decodes it on arrival (lossy: see compress.py). Returns an :class:`ExchangeHandle`
    when ``async_op``, else None once output is filled."""
    topology = resolve_topology(topology)
    plan, codec = plan_exchange(
        topology,
        input,
        output,
        output_split_sizes,
        input_split_sizes,
        compress,
        "hierarchical_all_to_all_single",
    )
    handle = ExchangeHandle(_exchange(output, input, plan, topology, codec))
    if async_op:
        return handle
    handle.wait()
    return None


class _HierarchicalAllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, plan, topology, codec):
        output = input.new_empty((sum(plan.output_splits), *input.shape[1:]))
        ExchangeHandle(_exchange(output, input, plan, topology, codec)).wait()
        ctx.plan, ctx.topology, ctx.codec = plan, topology, codec
        return output

    @staticmethod
    def backward(ctx, grad):
        # The reverse exchange (splits transposed); the forward validated the plan on every
        # rank, so the backward needs no second metadata exchange.
        plan = ctx.plan.reversed()
        grad_input = grad.new_empty((sum(plan.output_splits), *grad.shape[1:]))
        ExchangeHandle(_exchange(grad_input, grad, plan, ctx.topology, ctx.codec)).wait()
        return grad_input, None, None, None


def hierarchical_all_to_all(
    input: torch.Tensor,
    output_split_sizes: Splits = None,
    input_split_sizes: Splits = None,
    topology: Topology | None = None,
    *,
    compress: str | None = None,
) -> torch.Tensor:
    """The functional, differentiable form: returns the exchanged rows (sum of
    output_split_sizes rows; input's rows when it is None, split equally). Its backward is
    the reverse exchange, also hierarchical; with ``compress`` the gradient travels in the
    same format (straight-through: the codec's rounding is not differentiated)."""
    topology = resolve_topology(topology)
    plan, codec = plan_exchange(
        topology,
        input,
        None,
        output_split_sizes,
        input_split_sizes,
        compress,
        "hierarchical_all_to_all",
    )
    return _HierarchicalAllToAll.apply(input, plan, topology, codec)


def flat_all_to_all_single(
    output: torch.Tensor,
    input: torch.Tensor,
    output_split_sizes: Splits = None,
    input_split_sizes: Splits = None,
    topology: Topology | None = None,
    async_op: bool = False,
):
    """``torch.distributed.all_to_all_single`` over the topology's group, on byte views
    (so FP8 runs on gloo too), counted in ``topology.counters["flat"]``: the baseline.
    Validated as the hierarchical exchange is (the same errors on every rank)."""
    topology = resolve_topology(topology)
    plan, _ = plan_exchange(
        topology,
        input,
        output,
        output_split_sizes,
        input_split_sizes,
        None,
        "flat_all_to_all_single",
    )
    W = topology.world_size
    send, recv = plan.input_splits, plan.output_splits
    received = output
    if not output.is_contiguous():
        received = torch.empty_like(output, memory_format=torch.contiguous_format)
    in_bytes = byte_rows(input)
    counters = topology.counters["flat"]
    counters.exchanges += 1
    row_bytes = in_bytes.shape[1]
    for r in range(W):
        if r == topology.rank:
            continue
        if topology.host_of(r) == topology.host:
            counters.intra_host_bytes += send[r] * row_bytes
            counters.intra_host_messages += 1
        else:
            counters.cross_host_bytes += send[r] * row_bytes
            counters.cross_host_messages += 1
    work = dist.all_to_all_single(
        byte_rows(received), in_bytes, recv, send, group=topology.group, async_op=async_op
    )
    if received is not output:
        if async_op:
            work.wait()
        output.copy_(received)
    return work if async_op else None
