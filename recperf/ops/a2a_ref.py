"""Reference of permute_chunks, written for clarity: the chunks sliced out and concatenated
in the new order. Exact for every dtype (it copies), so tests compare bit for bit."""

from __future__ import annotations

import torch


def chunk_starts(sizes: list[int]) -> list[int]:
    """First row of each chunk of sizes."""
    starts, row = [], 0
    for size in sizes:
        starts.append(row)
        row += size
    return starts


def permute_chunks_ref(
    input: torch.Tensor, chunk_sizes: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Output chunk i = input chunk order[i]; input [R, ...], chunk_sizes [C], order [C]."""
    sizes = chunk_sizes.tolist()
    starts = chunk_starts(sizes)
    pieces = [input.narrow(0, starts[j], sizes[j]) for j in order.tolist()]
    if not pieces:
        return torch.empty_like(input, memory_format=torch.contiguous_format)
    return torch.cat(pieces).contiguous()


def inverse_order(order: torch.Tensor) -> torch.Tensor:
    """The order that undoes ``order``: inverse[order[i]] = i."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), dtype=order.dtype, device=order.device)
    return inverse
