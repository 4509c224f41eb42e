"""Triton kernel of permute_chunks (the ``triton`` backend of recperf.ops.a2a).

permute_chunks moves bytes, so the launcher sees input [R, ...] of any dtype as a
[R, words] matrix of the widest integer word (8, 4, 2 or 1 bytes) that divides a row and
both pointers' alignment, and the kernel copies words: fp8, bool and complex rows are
handled like any other, and nothing is ever converted.

Each program copies a [BLOCK_R, BLOCK_W] tile of the output. A row's chunk is found by a
branch-free binary search over the chunks' first output rows (SEARCH_STEPS constexpr
halvings, no data-dependent loop: Triton 3.6's interpreter cannot take a runtime bound in
``range`` under NumPy >= 2.4, triton-lang/triton#9171), then the tile is a masked gather of
whole rows: consecutive lanes read consecutive words of one source row.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Words a program copies: enough bytes per program on the GPU (16 KiB of int64 words),
# and few programs under the interpreter.
TILE_WORDS = 2048
MAX_BLOCK_W = 512
MAX_GRID_Y = 65535  # CUDA's limit on the second grid dimension


@triton.jit
def _permute_rows_kernel(
    out_ptr,  # [R, W] words, contiguous
    in_ptr,  # [R, W] words, contiguous
    dst_start_ptr,  # [C] int64: first output row of each non-empty chunk, strictly ascending
    src_start_ptr,  # [C] int64: the input row it comes from
    R,
    W,
    C,
    SEARCH_STEPS: tl.constexpr,  # ceil(log2(C)): halvings of the chunk search
    BLOCK_R: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    pid_r = tl.program_id(0).to(tl.int64)
    pid_w = tl.program_id(1).to(tl.int64)
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    row_ok = rows < R
    # chunk = the last i with dst_start[i] <= row (dst_start[0] == 0): binary lifting.
    chunk = tl.zeros((BLOCK_R,), dtype=tl.int64)
    for s in tl.static_range(SEARCH_STEPS):
        cand = chunk + (1 << (SEARCH_STEPS - 1 - s))
        start = tl.load(dst_start_ptr + cand, mask=row_ok & (cand < C), other=R)
        chunk = tl.where(start <= rows, cand, chunk)
    dst0 = tl.load(dst_start_ptr + chunk, mask=row_ok, other=0)
    src0 = tl.load(src_start_ptr + chunk, mask=row_ok, other=0)
    src_rows = src0 + (rows - dst0)
    cols = pid_w * BLOCK_W + tl.arange(0, BLOCK_W).to(tl.int64)
    mask = row_ok[:, None] & (cols < W)[None, :]
    words = tl.load(in_ptr + src_rows[:, None] * W + cols[None, :], mask=mask)
    tl.store(out_ptr + rows[:, None] * W + cols[None, :], words, mask=mask)


def _word_dtype(row_bytes: int, *tensors: torch.Tensor) -> torch.dtype:
    for size, dtype in ((8, torch.int64), (4, torch.int32), (2, torch.int16)):
        if row_bytes % size == 0 and all(t.data_ptr() % size == 0 for t in tensors):
            return dtype
    return torch.uint8


def permute_chunks(
    input: torch.Tensor, chunk_sizes: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Output chunk i = input chunk order[i] (chunks: runs of chunk_sizes[j] rows of input
    [R, ...]); any dtype. The arguments are checked by recperf.ops.a2a beforehand."""
    out = torch.empty_like(input, memory_format=torch.contiguous_format)
    if out.numel() == 0:
        return out
    src = input.contiguous()
    sizes = chunk_sizes.tolist()
    first_row = [0]
    for size in sizes[:-1]:
        first_row.append(first_row[-1] + size)
    dst_start, src_start, dst = [], [], 0
    for j in order.tolist():
        if sizes[j]:
            dst_start.append(dst)
            src_start.append(first_row[j])
            dst += sizes[j]
    starts = torch.tensor([dst_start, src_start], dtype=torch.int64).to(input.device)
    R, C = input.shape[0], len(dst_start)
    row_bytes = src.nbytes // R
    word = _word_dtype(row_bytes, src, out)
    W = row_bytes // word.itemsize
    src_words = src.view(-1).view(torch.uint8).view(word).view(R, W)
    out_words = out.view(-1).view(torch.uint8).view(word).view(R, W)
    block_w = min(triton.next_power_of_2(W), MAX_BLOCK_W)
    block_r = min(triton.next_power_of_2(R), max(1, TILE_WORDS // block_w))
    grid = (triton.cdiv(R, block_r), triton.cdiv(W, block_w))
    if grid[1] > MAX_GRID_Y:
        raise ValueError(f"permute_chunks (Triton): rows of {row_bytes} bytes are too wide")
    _permute_rows_kernel[grid](
        out_words,
        src_words,
        starts[0],
        starts[1],
        R,
        W,
        C,
        SEARCH_STEPS=(C - 1).bit_length(),
        BLOCK_R=block_r,
        BLOCK_W=block_w,
    )
    return out
