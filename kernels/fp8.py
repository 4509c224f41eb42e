"""Triton kernels of FP8 quantization (the ``triton`` backend of recperf.ops.fp8's
``quantize_fp8``), bit for bit the arithmetic of :mod:`recperf.ops.fp8_ref`.

One launcher, ``quantize_fp8(x, granularity, fp8_dtype, transposed)``, over x [M, K] of any
strides: the codes of x (q [M, K]) or of x^T (q [K, M]), with one scale per row of the
quantized matrix ("row") or one for all of it ("tensor").

Design
------
* The kernels see a matrix of L *lines* of E *elements* with strides (stride_l, stride_e):
  x itself, or x^T (a strided view, never copied) for the transposed codes. The quantized
  matrix q [L, E] is contiguous, one scale per line. Tiles are [BLOCK_L, BLOCK_E]: wide
  along E when x's rows are contiguous, 64 lines by 64 elements when the lines are (x^T of
  a row-major x), so that both the loads of x and the stores of q^T are coalesced; Triton
  converts the tile's layout between the two through shared memory.
* amax as bits: max |x| is the integer max of the fp32 bits of |x| (non-negative int32).
  A NaN's bits exceed inf's, which exceed every finite value's, so the max is NaN exactly
  when a NaN is there (a float max may drop NaNs) and partial maxima merge exactly, in
  any order.
* Row-wise, fused: a program owns BLOCK_L lines, takes their amax over E chunk by chunk,
  then casts the same lines (the second read comes from L2; a single tile stays in
  registers). When there are too few line blocks to fill the GPU, E is split over S
  programs instead: an amax kernel writes per-split partial maxima [S, L], a cast kernel
  merges its lines' partials and casts its split. Tensor-wise always takes the two-kernel
  path: per-program partials of the global amax, then the cast kernel merges all of them
  (a few hundred) and program 0 writes the scale. No host synchronization anywhere.
* The numerics, all fp32: inv = fp8_max / amax and scale = amax / fp8_max by IEEE
  divisions (``tl.math.div_rn``: ``/`` may be approximate on the GPU), both 1 when
  amax == 0; v = x * inv; v clamped to [-fp8_max, fp8_max] keeping NaN; then v is rounded
  to the fp8 grid explicitly, to nearest even, in exact fp32 / integer arithmetic, so the
  final cast to fp8 is of a representable value. That keeps one numerics on every path:
  Triton's CPU interpreter neither rounds nor saturates its fp8 casts (and turns an e4m3
  NaN into 384, which the INTERPRETER path patches back to NaN).
* Line-block loops are ``while`` loops (persistent programs) and element loops too: Triton
  3.6's interpreter cannot take a runtime bound in ``range`` under NumPy >= 2.4.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

# (fp8 max, mantissa bits, exponent of the smallest normal) of each fp8 dtype.
_FORMATS = {
    torch.float8_e4m3fn: (448.0, 3, -6),
    torch.float8_e5m2: (57344.0, 2, -14),
}

MAX_TILE = 4096  # elements of a [BLOCK_L, BLOCK_E] tile
# Test hook: the number of E splits of the row-wise path (None: chosen from the shape and
# the device; 1: the fused kernel). Lets CPU tests run every path on small shapes.
SPLITS_OVERRIDE: int | None = None


# ------------------------------------------------------------------------------------
# Device helpers


@triton.jit
def _f32(x, INTERPRETER: tl.constexpr):
    """x as fp32, exactly. The interpreter mangles bf16 subnormals when it upcasts them,
    so there the bf16 bits are shifted into place (what the GPU's conversion does)."""
    if INTERPRETER and x.dtype == tl.bfloat16:
        return (x.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return x.to(tl.float32)


@triton.jit
def _abs_bits(x, INTERPRETER: tl.constexpr):
    """The fp32 bits of |x|, a non-negative int32: their max is max |x|, NaN if any is."""
    return _f32(x, INTERPRETER).to(tl.int32, bitcast=True) & 0x7FFFFFFF


@triton.jit
def _scales(amax_bits, TOP: tl.constexpr):
    """(inv, scale) from amax's bits: TOP / amax and amax / TOP (IEEE), 1 when amax == 0."""
    amax = amax_bits.to(tl.float32, bitcast=True)
    zero = amax == 0.0
    denom = tl.where(zero, 1.0, amax)  # no division by zero, even in the unused lane
    top = tl.full(amax.shape, TOP, tl.float32)
    inv = tl.where(zero, 1.0, tl.math.div_rn(top, denom))
    scale = tl.where(zero, 1.0, tl.math.div_rn(denom, top))
    return inv, scale


@triton.jit
def _quantize(
    x,  # [BLOCK_L, BLOCK_E] x's dtype
    inv,  # [BLOCK_L] fp32
    q_dtype: tl.constexpr,
    TOP: tl.constexpr,
    MBITS: tl.constexpr,
    EMIN: tl.constexpr,
    INTERPRETER: tl.constexpr,
):
    """The fp8 codes of clamp(x * inv, -TOP, TOP), rounded to nearest even."""
    v = _f32(x, INTERPRETER) * inv[:, None]
    v = tl.where(v > TOP, TOP, v)  # comparisons with NaN are false: NaN stays
    v = tl.where(v < -TOP, -TOP, v)
    # Round to the fp8 grid: ulp = 2^(max(e, EMIN) - MBITS) with e = v's exponent (fp8
    # subnormals share the smallest normal's ulp). |v| / ulp < 2^(MBITS + 1) is exact, so
    # is its rounding to an integer (on the truncated integer and the exact fraction) and
    # the product back; the sign is put back from the bits (-0 and tiny negatives -> -0).
    bits = v.to(tl.uint32, bitcast=True)
    mag = bits & 0x7FFFFFFF
    e = tl.maximum((mag >> 23).to(tl.int32) - 127, EMIN)
    up = ((127 + MBITS - e) << 23).to(tl.float32, bitcast=True)  # 1 / ulp
    down = ((127 - MBITS + e) << 23).to(tl.float32, bitcast=True)  # ulp
    y = mag.to(tl.float32, bitcast=True) * up
    y = tl.where(y == y, y, 0.0)  # NaN: put back below; keeps the int cast defined
    yi = y.to(tl.int32)  # floor (y >= 0)
    frac = y - yi.to(tl.float32)
    odd = (yi & 1) == 1
    yi += ((frac > 0.5) | ((frac == 0.5) & odd)).to(tl.int32)
    r = (yi.to(tl.float32) * down).to(tl.uint32, bitcast=True) | (bits & 0x80000000)
    r = tl.where(v == v, r.to(tl.float32, bitcast=True), v)
    q = r.to(q_dtype)
    if INTERPRETER:  # its cast maps an e4m3 NaN to 384: patch the code to 0x7F (NaN)
        codes = tl.where(r == r, q.to(tl.uint8, bitcast=True), 0x7F)
        q = codes.to(tl.uint8).to(q_dtype, bitcast=True)
    return q


@triton.jit
def _tile(
    x_ptr,  # [L, E] strides (stride_l, stride_e)
    offs_l,  # [BLOCK_L] int64 line indices
    offs_e,  # [BLOCK_E] int64 element indices
    L,
    E,
    stride_l,
    stride_e,
):
    """The [BLOCK_L, BLOCK_E] tile at (offs_l, offs_e) and its mask, zero outside."""
    mask = (offs_l[:, None] < L) & (offs_e[None, :] < E)
    ptrs = x_ptr + offs_l[:, None] * stride_l + offs_e[None, :] * stride_e
    return tl.load(ptrs, mask=mask, other=0.0), mask


# ------------------------------------------------------------------------------------
# Kernels


@triton.jit
def _quantize_rows_kernel(
    q_ptr,  # [L, E] fp8, contiguous
    scale_ptr,  # [L] fp32
    x_ptr,  # [L, E] strides (stride_l, stride_e)
    L,
    E,
    stride_l,
    stride_e,
    TOP: tl.constexpr,
    MBITS: tl.constexpr,
    EMIN: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_E: tl.constexpr,
    ONE_TILE: tl.constexpr,  # E <= BLOCK_E: the lines stay in registers between passes
    INTERPRETER: tl.constexpr,
):
    lb = tl.program_id(0).to(tl.int64)  # this program's first block of lines
    cols = tl.arange(0, BLOCK_E).to(tl.int64)
    n_blocks = tl.cdiv(L, BLOCK_L)
    while lb < n_blocks:
        offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
        if ONE_TILE:
            x, mask = _tile(x_ptr, offs_l, cols, L, E, stride_l, stride_e)
            inv, scale = _scales(tl.max(_abs_bits(x, INTERPRETER), axis=1), TOP)
            q = _quantize(x, inv, q_ptr.dtype.element_ty, TOP, MBITS, EMIN, INTERPRETER)
            tl.store(q_ptr + offs_l[:, None] * E + cols[None, :], q, mask=mask)
        else:
            amax_bits = tl.zeros([BLOCK_L], dtype=tl.int32)
            e0 = 0
            while e0 < E:
                x, _ = _tile(x_ptr, offs_l, e0 + cols, L, E, stride_l, stride_e)
                amax_bits = tl.maximum(amax_bits, tl.max(_abs_bits(x, INTERPRETER), axis=1))
                e0 += BLOCK_E
            inv, scale = _scales(amax_bits, TOP)
            e0 = 0
            while e0 < E:
                offs_e = e0 + cols
                x, mask = _tile(x_ptr, offs_l, offs_e, L, E, stride_l, stride_e)
                q = _quantize(x, inv, q_ptr.dtype.element_ty, TOP, MBITS, EMIN, INTERPRETER)
                tl.store(q_ptr + offs_l[:, None] * E + offs_e[None, :], q, mask=mask)
                e0 += BLOCK_E
        tl.store(scale_ptr + offs_l, scale, mask=offs_l < L)
        lb += tl.num_programs(0)


@triton.jit
def _amax_kernel(
    part_ptr,  # ROWWISE: [S, L] int32; else [S, num_programs(0)] int32 (bits of amax)
    x_ptr,  # [L, E] strides (stride_l, stride_e)
    L,
    E,
    stride_l,
    stride_e,
    CHUNK,  # elements of E per split (a multiple of BLOCK_E); split s is program_id(1)
    ROWWISE: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_E: tl.constexpr,
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    s = tl.program_id(1).to(tl.int64)
    cols = tl.arange(0, BLOCK_E).to(tl.int64)
    n_blocks = tl.cdiv(L, BLOCK_L)
    e_begin = s * CHUNK
    e_end = tl.minimum(e_begin + CHUNK, E)
    acc = tl.zeros([BLOCK_L], dtype=tl.int32)  # tensor-wise: over all the program's lines
    lb = pid
    while lb < n_blocks:
        offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
        amax_bits = tl.zeros([BLOCK_L], dtype=tl.int32)
        e0 = e_begin
        while e0 < e_end:
            x, _ = _tile(x_ptr, offs_l, e0 + cols, L, e_end, stride_l, stride_e)
            amax_bits = tl.maximum(amax_bits, tl.max(_abs_bits(x, INTERPRETER), axis=1))
            e0 += BLOCK_E
        if ROWWISE:
            tl.store(part_ptr + s * L + offs_l, amax_bits, mask=offs_l < L)
        else:
            acc = tl.maximum(acc, amax_bits)
        lb += tl.num_programs(0)
    if not ROWWISE:
        tl.store(part_ptr + s * tl.num_programs(0) + pid, tl.max(acc, axis=0))


@triton.jit
def _cast_kernel(
    q_ptr,  # [L, E] fp8, contiguous
    scale_ptr,  # ROWWISE: [L] fp32; else [] fp32
    part_ptr,  # ROWWISE: [S, L] int32; else [P] int32 (bits of the partial amaxes)
    x_ptr,  # [L, E] strides (stride_l, stride_e)
    L,
    E,
    stride_l,
    stride_e,
    CHUNK,  # elements of E per split (a multiple of BLOCK_E); split s is program_id(1)
    S,  # ROWWISE: rows of the partials
    P,  # not ROWWISE: count of the partials
    ROWWISE: tl.constexpr,
    TOP: tl.constexpr,
    MBITS: tl.constexpr,
    EMIN: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_P: tl.constexpr,  # not ROWWISE: power of two >= P
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    s = tl.program_id(1).to(tl.int64)
    cols = tl.arange(0, BLOCK_E).to(tl.int64)
    lanes = tl.arange(0, BLOCK_L)
    n_blocks = tl.cdiv(L, BLOCK_L)
    e_begin = s * CHUNK
    e_end = tl.minimum(e_begin + CHUNK, E)
    if not ROWWISE:
        offs_p = tl.arange(0, BLOCK_P)
        parts = tl.load(part_ptr + offs_p, mask=offs_p < P, other=0)
        amax_all = tl.zeros([BLOCK_L], dtype=tl.int32) + tl.max(parts, axis=0)
        inv, scale = _scales(amax_all, TOP)
        # One comparison, not `scalar & tensor` masks: Triton >= 3.9's interpreter turns
        # those into integer masks that tl.store refuses.
        first = (pid + s + lanes) == 0  # all three are >= 0
        tl.store(scale_ptr + lanes, scale, mask=first)  # lane 0 only: scale_ptr is []
    lb = pid
    while lb < n_blocks:
        offs_l = lb * BLOCK_L + lanes
        if ROWWISE:
            amax_bits = tl.zeros([BLOCK_L], dtype=tl.int32)
            i = 0
            while i < S:
                part = tl.load(part_ptr + i.to(tl.int64) * L + offs_l, mask=offs_l < L, other=0)
                amax_bits = tl.maximum(amax_bits, part)
                i += 1
            inv, scale = _scales(amax_bits, TOP)
            tl.store(scale_ptr + offs_l, scale, mask=offs_l + s * L < L)  # split 0 only
        e0 = e_begin
        while e0 < e_end:
            offs_e = e0 + cols
            x, mask = _tile(x_ptr, offs_l, offs_e, L, e_end, stride_l, stride_e)
            q = _quantize(x, inv, q_ptr.dtype.element_ty, TOP, MBITS, EMIN, INTERPRETER)
            tl.store(q_ptr + offs_l[:, None] * E + offs_e[None, :], q, mask=mask)
            e0 += BLOCK_E
        lb += tl.num_programs(0)


# ------------------------------------------------------------------------------------
# Launcher


def _interpreter() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter runs programs one after another


def _tiles(L: int, E: int, stride_l: int, stride_e: int) -> tuple[int, int]:
    """(BLOCK_L, BLOCK_E): wide along E unless the lines are the contiguous direction."""
    if stride_l == 1 and stride_e != 1 and L > 1:  # x^T of a row-major x: 64 x 64 tiles
        block_l = min(triton.next_power_of_2(L), 64)
        block_e = min(triton.next_power_of_2(E), MAX_TILE // block_l)
    else:
        block_e = min(triton.next_power_of_2(E), MAX_TILE)
        block_l = min(triton.next_power_of_2(L), MAX_TILE // block_e)
    return block_l, block_e


def _splits(L: int, E: int, block_l: int, block_e: int, rowwise: bool, target: int) -> int:
    """How many programs share a line block's E: enough line-block programs x splits to
    fill `target` programs, 1 (the fused kernel) when the line blocks alone do."""
    e_tiles = triton.cdiv(E, block_e)
    line_blocks = triton.cdiv(L, block_l)
    if rowwise and SPLITS_OVERRIDE is not None:
        return max(1, min(SPLITS_OVERRIDE, e_tiles))
    if rowwise and 2 * line_blocks >= target:
        return 1
    return max(1, min(e_tiles, triton.cdiv(target, line_blocks)))


def quantize_fp8(
    x: torch.Tensor, granularity: str, fp8_dtype: torch.dtype, transposed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 codes and scales of x [M, K] (float32 / bfloat16 / float16, any strides), bit
    for bit those of recperf.ops.fp8_ref.quantize_fp8_ref.

    Not transposed: q [M, K] contiguous, scale fp32 [M, 1] ("row") or [] ("tensor").
    Transposed: the codes of x^T, q [K, M] contiguous, one scale per column of x
    ([K, 1]) or []. Row-wise: one fused kernel (amax, then cast, per block of rows), or an
    amax kernel and a cast kernel over E splits when the rows are too few to fill the
    device. Tensor-wise: the amax kernel's per-program partials, merged by the cast kernel.
    """
    top, mbits, emin = _FORMATS[fp8_dtype]
    rowwise = granularity == "row"
    src = x.t() if transposed else x
    L, E = src.shape
    q = torch.empty((L, E), device=x.device, dtype=fp8_dtype)
    scale = torch.empty((L, 1) if rowwise else (), device=x.device, dtype=torch.float32)
    if L == 0 or E == 0:  # amax 0: scale 1, no codes
        return q, scale.fill_(1.0)
    stride_l, stride_e = src.stride()
    block_l, block_e = _tiles(L, E, stride_l, stride_e)
    line_blocks = triton.cdiv(L, block_l)
    target = 4 * _sm_count(x.device)
    num_warps = 8 if block_l * block_e >= 4096 else 4
    common = dict(BLOCK_L=block_l, BLOCK_E=block_e, num_warps=num_warps)
    fmt = dict(TOP=top, MBITS=mbits, EMIN=emin, INTERPRETER=_interpreter())
    splits = _splits(L, E, block_l, block_e, rowwise, target)
    if rowwise and splits == 1:
        grid = (min(line_blocks, target),)
        _quantize_rows_kernel[grid](
            q, scale, src, L, E, stride_l, stride_e, ONE_TILE=block_e >= E, **fmt, **common
        )
        return q, scale
    chunk = triton.cdiv(triton.cdiv(E, block_e), splits) * block_e
    splits = triton.cdiv(E, chunk)  # no empty split
    line_programs = line_blocks if rowwise else min(line_blocks, max(1, target // splits))
    grid = (line_programs, splits)
    parts = torch.empty(
        (splits, L) if rowwise else (splits, line_programs), device=x.device, dtype=torch.int32
    )  # bits of non-negative fp32 values
    _amax_kernel[grid](
        parts,
        src,
        L,
        E,
        stride_l,
        stride_e,
        chunk,
        ROWWISE=rowwise,
        INTERPRETER=fmt["INTERPRETER"],
        **common,
    )
    n_parts = parts.numel()
    _cast_kernel[(min(line_blocks, target), splits)](
        q,
        scale,
        parts,
        src,
        L,
        E,
        stride_l,
        stride_e,
        chunk,
        splits,
        n_parts,
        ROWWISE=rowwise,
        BLOCK_P=triton.next_power_of_2(n_parts),
        **fmt,
        **common,
    )
    return q, scale
