"""A differentiable all-to-all of whole tensors inside one group (the list form of
all-to-all): rank i of the group sends blocks[j] to rank j and receives a block of
recv_shapes[j] from it. Blocks may differ in shape from peer to peer (the tower transform
sends each host's tower output, whose width is the tower's own); they travel as one flat
byte buffer, so any dtype goes. The backward is the same exchange in reverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from recperf.distributed.compress import Codec
from recperf.distributed.topology import ExchangeCounters


def _flat_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def _exchange(
    blocks: Sequence[torch.Tensor],
    recv_shapes: Sequence[tuple[int, ...]],
    group: dist.ProcessGroup,
    me: int,
    codec: Codec,
    counters: ExchangeCounters | None,
    cross: bool,
) -> list[torch.Tensor]:
    dtype, device = blocks[me].dtype, blocks[me].device
    if len(blocks) == 1:  # a group of one: nothing leaves the rank
        return [blocks[0].reshape(recv_shapes[0])]
    payloads = [_flat_bytes(codec.encode(b)) for b in blocks]
    metas = [codec.payload_meta(tuple(s[1:]), dtype) for s in recv_shapes]
    recv_bytes = [
        s[0] * math.prod(shape) * torch.empty((), dtype=pdtype).element_size()
        for s, (shape, pdtype) in zip(recv_shapes, metas, strict=True)
    ]
    send_bytes = [p.numel() for p in payloads]
    received = torch.empty(sum(recv_bytes), dtype=torch.uint8, device=device)
    dist.all_to_all_single(received, torch.cat(payloads), recv_bytes, send_bytes, group=group)
    if counters is not None:
        sent = sum(n for i, n in enumerate(send_bytes) if i != me)
        if cross:
            counters.cross_host_bytes += sent
            counters.cross_host_messages += len(blocks) - 1
        else:
            counters.intra_host_bytes += sent
            counters.intra_host_messages += len(blocks) - 1
    out = []
    for piece, shape, (pshape, pdtype) in zip(
        received.split(recv_bytes), recv_shapes, metas, strict=True
    ):
        payload = piece.view(pdtype).reshape(shape[0], *pshape)
        out.append(codec.decode(payload, dtype, tuple(shape[1:])).reshape(shape))
    return out


class _BlockExchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, setup, *blocks):
        group, me, recv_shapes, codec, counters, cross = setup
        ctx.setup = setup
        ctx.send_shapes = [tuple(b.shape) for b in blocks]
        ctx.like = blocks[me]
        return tuple(_exchange(blocks, recv_shapes, group, me, codec, counters, cross))

    @staticmethod
    def backward(ctx, *grads):
        group, me, recv_shapes, codec, counters, cross = ctx.setup
        grads = [
            ctx.like.new_zeros(shape) if g is None else g
            for g, shape in zip(grads, recv_shapes, strict=True)
        ]
        back = _exchange(grads, ctx.send_shapes, group, me, codec, counters, cross)
        return (None, *back)


def exchange_blocks(
    blocks: Sequence[torch.Tensor],
    recv_shapes: Sequence[tuple[int, ...]],
    group: dist.ProcessGroup,
    *,
    codec: Codec | None = None,
    counters: ExchangeCounters | None = None,
    cross_host: bool = False,
) -> list[torch.Tensor]:
    """Send blocks[j] to group rank j, receive blocks of recv_shapes[j] from it (same dtype
    everywhere; the shapes must agree pairwise, which the caller guarantees). ``codec``
    compresses rows in both directions; ``counters`` records the bytes and messages sent,
    as intra-host or cross-host traffic. Differentiable."""
    me = dist.get_rank(group)
    setup = (group, me, [tuple(s) for s in recv_shapes], codec or Codec(), counters, cross_host)
    return list(_BlockExchange.apply(setup, *blocks))
