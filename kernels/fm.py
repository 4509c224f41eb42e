"""Triton kernels of the FM interaction ops (the ``triton`` backend of recperf.ops.fm).

Shapes: x [B, n, d] (any strides), proj [n, k], weight/bias [n * k]. Six launchers, one per
kernel of :mod:`recperf.ops.fm_backends`; their math and return conventions are those of
:mod:`recperf.ops.fm_ref`.

Design
------
* One example's work lives in one program; every kernel loops over examples
  b = pid, pid + num_programs, ... < B, so a program handles one example or several
  (small n: fewer, fuller programs; the backward of the projected forms: a persistent
  grid). Loops over d run a constexpr count of chunks and the example loop is a
  ``while``: Triton 3.6's interpreter cannot take a runtime bound in ``range`` under
  NumPy >= 2.4 (triton-lang/triton#9171).
* Every product is a ``tl.dot`` over tiles padded to powers of two >= 16 (tl.dot's
  minimum), loads masked with ``other=0`` so the padding adds nothing. Operands stay in
  x's dtype (bf16/fp16 tensor cores) and accumulate in fp32; fp32 inputs use
  ``input_precision="ieee"`` (no tf32) so fp32 results stay within ~1e-5. Under Triton's
  CPU interpreter ``tl.dot`` on bf16 is wrong, so there the operands are upcast to fp32
  (``INTERPRETER``); intermediates are still rounded to x's dtype, as on the GPU.
* Pairwise: the [n, n] Gram matrix in tiles of BLOCK_T features (64 for 16-bit x, 32 for
  fp32), upper-triangle tiles only, chunked over d; only the pairs of
  ``torch.triu_indices`` are written. Backward: grad_x[i] = sum_j S'[i, j] x[j],
  S' = S + S^T gathered tile by tile from the pair gradient (a self pair counts twice).
* Projected: never forms x x^T. For each chunk dc of d: T_c = x[:, dc]^T P and
  F += x[:, dc] T_c, so each chunk of x is loaded once per pass; the whole [n, k] result
  stays in registers, so these fused kernels take results up to FUSED_MAX_TILE.
  The layer norm over the n * k features is fused into the same program (fp32 mean and
  variance of the register tile, two-pass over registers, not E[f^2] - E[f]^2).
* Projected backward (with G = dF): per chunk dc, T_c = x_c^T P, gT_c = x_c^T G,
  grad_x[:, dc] = G T_c^T + P gT_c^T, and grad_proj += x_c gT_c. grad_proj (and the
  norm's grad_weight / grad_bias) accumulate per program in fp32 registers across the
  program's examples, are written as per-program partials and summed in torch:
  deterministic, no atomics. The norm backward recomputes F (one extra pass over x)
  instead of saving it.
* Tiled path, for results past FUSED_MAX_TILE / FUSED_MAX_K (so every shape the ops
  accept runs): the same math as batched products of one small GEMM kernel
  (``_bmm_kernel``: [64, 64] output tiles, any strides, operands cast to x's dtype,
  fp32 accumulation) through global memory: T = x^T P, then F = x T (T as hi + lo for
  the norm, as SPLIT_T); backward gT = x^T G, grad_x = G T^T + P gT^T in one launch,
  grad_proj as per-program partials over the batch. The layer norm and its backward are
  linear_norm's row kernels (whole rows, or chunks with two-pass statistics).
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl
from recperf.kernels.linear_norm import _norm_rows_bwd, _norm_rows_fwd

# Test hook: set False to run native 16-bit dots under the interpreter (right for fp16,
# wrong for bf16 there); on the GPU it changes nothing.
UPCAST_DOTS_UNDER_INTERPRETER = True
# Largest [BLOCK_N, BLOCK_K] result tile of fm_projected(_norm) that one program keeps in
# registers, per kernel and operand bytes (sm_90a ptxas at that tile: no spills, one step
# more spills), and the widest BLOCK_K; larger results take the tiled path (batched
# products through global memory). Tests lower them.
FUSED_MAX_TILE = {
    ("fwd", 2): 256 * 32,
    ("fwd", 4): 256 * 32,
    ("norm_fwd", 2): 256 * 32,
    ("norm_fwd", 4): 128 * 32,
    ("bwd", 2): 256 * 32,
    ("bwd", 4): 64 * 32,
    ("norm_bwd", 2): 128 * 32,
    ("norm_bwd", 4): 32 * 32,
}
FUSED_MAX_K = {2: 64, 4: 32}
# Widest output tile of the tiled path's batched products (tests lower it).
TILED_MAX_BLOCK = 64


# ------------------------------------------------------------------------------------
# Shared device helpers


@triton.jit
def _dot(a, b, acc, INTERPRETER: tl.constexpr):
    """acc + a @ b, fp32 accumulation: native bf16/fp16 dots (tensor cores), fp32 ones
    without tf32; under the interpreter 16-bit operands are upcast (its bf16 dot is wrong)."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, acc, input_precision="ieee")
    elif INTERPRETER:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        out = tl.dot(a, b, acc)
    return out


@triton.jit
def _cast(v, dtype: tl.constexpr, INTERPRETER: tl.constexpr):
    """v.to(dtype), rounding to nearest even. The interpreter truncates fp32 -> bf16, so
    there the rounding is done on the fp32 bits first (the cast is then exact)."""
    if INTERPRETER and dtype == tl.bfloat16:
        u = v.to(tl.float32).to(tl.uint32, bitcast=True)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        v = u.to(tl.float32, bitcast=True)
    return v.to(dtype)


@triton.jit
def _load_rows(
    base,  # pointer to a [n, m] matrix with strides (stride_r, stride_c)
    offs_r,  # [BLOCK_R] row indices
    offs_c,  # [BLOCK_C] column indices
    n_r,
    n_c,
    stride_r,
    stride_c,
):
    """The [BLOCK_R, BLOCK_C] tile at (offs_r, offs_c), zero outside [n_r, n_c]."""
    ptrs = base + offs_r[:, None] * stride_r + offs_c[None, :] * stride_c
    mask = (offs_r[:, None] < n_r) & (offs_c[None, :] < n_c)
    return tl.load(ptrs, mask=mask, other=0.0)


@triton.jit
def _pair_index(i, j, n, OFFSET: tl.constexpr):
    """Position of pair (i, j), j >= i + OFFSET, in torch.triu_indices(n, n, OFFSET)."""
    return i * (n - OFFSET) - (i * (i - 1)) // 2 + (j - i - OFFSET)


@triton.jit
def _project(
    x_b,  # pointer to one example's x [n, d], strides (stride_xn, stride_xd)
    p,  # [BLOCK_N, BLOCK_K] proj tile in x's dtype, zero-padded
    n,
    d,
    stride_xn,
    stride_xd,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    SPLIT_T: tl.constexpr,  # 16-bit x: T_c as a hi + lo pair of 16-bit tiles (one more dot)
    INTERPRETER: tl.constexpr,
):
    """F = x (x^T P) [BLOCK_N, BLOCK_K] fp32, chunk by chunk of d; zero in the padding.

    With 16-bit x the second product takes T_c rounded to x's dtype (2^-9 relative for
    bf16), which is fine for a plain output in that dtype; a layer norm amplifies F's error
    by |mean| / std, so the norm kernels pass SPLIT_T to carry T_c's rounding error too."""
    offs_n = tl.arange(0, BLOCK_N)
    f = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for c in range(D_CHUNKS):
        offs_d = c * BLOCK_D + tl.arange(0, BLOCK_D)
        xc = _load_rows(x_b, offs_n, offs_d, n, d, stride_xn, stride_xd)  # [BLOCK_N, BLOCK_D]
        t = _dot(tl.trans(xc), p, tl.zeros((BLOCK_D, BLOCK_K), tl.float32), INTERPRETER)
        t_hi = _cast(t, xc.dtype, INTERPRETER)
        f = _dot(xc, t_hi, f, INTERPRETER)
        if SPLIT_T and xc.dtype != tl.float32:  # add t_hi's rounding error: F to ~fp32
            t_lo = _cast(t - t_hi.to(tl.float32), xc.dtype, INTERPRETER)
            f = _dot(xc, t_lo, f, INTERPRETER)
    return f


@triton.jit
def _projected_grads(
    gx_b,  # pointer to one example's grad_x [n, d], contiguous
    x_b,  # pointer to one example's x [n, d], strides (stride_xn, stride_xd)
    g,  # [BLOCK_N, BLOCK_K] dF tile in x's dtype, zero-padded
    p,  # [BLOCK_N, BLOCK_K] proj tile in x's dtype, zero-padded
    gp_acc,  # [BLOCK_N, BLOCK_K] fp32: the program's running grad_proj
    n,
    d,
    stride_xn,
    stride_xd,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    INTERPRETER: tl.constexpr,
):
    """Writes grad_x = G T^T + P gT^T (T = x^T P, gT = x^T G) chunk by chunk of d and
    returns gp_acc + x gT."""
    offs_n = tl.arange(0, BLOCK_N)
    for c in range(D_CHUNKS):
        offs_d = c * BLOCK_D + tl.arange(0, BLOCK_D)
        xc = _load_rows(x_b, offs_n, offs_d, n, d, stride_xn, stride_xd)  # [BLOCK_N, BLOCK_D]
        xt = tl.trans(xc)
        zero_dk = tl.zeros((BLOCK_D, BLOCK_K), tl.float32)
        t = _cast(_dot(xt, p, zero_dk, INTERPRETER), xc.dtype, INTERPRETER)  # [BLOCK_D, BLOCK_K]
        gt = _cast(_dot(xt, g, zero_dk, INTERPRETER), xc.dtype, INTERPRETER)  # [BLOCK_D, BLOCK_K]
        gx = _dot(g, tl.trans(t), tl.zeros((BLOCK_N, BLOCK_D), tl.float32), INTERPRETER)
        gx = _dot(p, tl.trans(gt), gx, INTERPRETER)
        mask = (offs_n[:, None] < n) & (offs_d[None, :] < d)
        tl.store(
            gx_b + offs_n[:, None] * d + offs_d[None, :],
            _cast(gx, xc.dtype, INTERPRETER),
            mask=mask,
        )
        gp_acc = _dot(xc, gt, gp_acc, INTERPRETER)
    return gp_acc


# ------------------------------------------------------------------------------------
# Launch helpers


def _interpreter() -> bool:
    """The INTERPRETER constexpr: the interpreter's workarounds (16-bit dots upcast to
    fp32, bf16 rounding emulated) under TRITON_INTERPRET=1, unless a test turns them off."""
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    return interpreted and UPCAST_DOTS_UNDER_INTERPRETER


def _block(v: int, cap: int | None = None) -> int:
    """Power-of-two tile >= 16 (tl.dot's minimum) covering v, at most cap."""
    b = max(16, triton.next_power_of_2(v))
    return b if cap is None else max(16, min(b, cap))


# Tile and warp choices below were checked by compiling every kernel for sm_90a with
# Triton's ptxas (n = 64, 128, 256; d = 64, 128; k = 32, 64): no register spills, shared
# memory far under the limit. fp32 dots (ieee: FMA, no tensor cores) hold their operands
# in registers, so fp32 gets smaller tiles, and FUSED_MAX_TILE sends its larger results
# to the tiled path (at 16 warps ptxas gives the fused fp32 backward only 32 registers and
# spills 2-5 KB a thread at n >= 128; at 8 warps it still spills 0.5-7 KB there).


def _pairwise_config(x: torch.Tensor) -> dict:
    n, d = x.shape[1], x.shape[2]
    fp32 = x.dtype == torch.float32
    block_t = _block(n, 32 if fp32 else 64)
    block_d = _block(d, max(16, 512 // block_t) if fp32 else max(32, 2048 // block_t))
    return dict(
        BLOCK_T=block_t,
        BLOCK_D=block_d,
        D_CHUNKS=triton.cdiv(d, block_d),
        NUM_TILES=triton.cdiv(n, block_t),
        num_warps=8 if block_t >= 64 else 4,  # fp32 at 8 warps spills (4-20 B)
    )


def _projected_config(x: torch.Tensor, k: int, backward: bool, norm: bool) -> dict:
    n, d = x.shape[1], x.shape[2]
    block_n, block_k = _block(n), _block(k)
    if x.dtype == torch.float32:
        block_d = 16
        warps = (8 if backward else 16) if block_n >= 64 else 4
    else:
        budget = 2048 if backward else 4096  # the backward holds more [n, *] tiles
        # x_c is [BLOCK_N, BLOCK_D], T_c [BLOCK_D, BLOCK_K]; the norm's T_c is a hi + lo pair
        wide = max(block_n, (2 if norm else 1) * block_k)
        block_d = _block(d, min(32 if backward else 64, max(16, budget // wide)))
        warps = 8 if block_n >= 64 else 4
    block_d = min(block_d, _block(d))
    return dict(
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        D_CHUNKS=triton.cdiv(d, block_d),
        num_warps=warps,
    )


def _fused(x: torch.Tensor, k: int, kernel: str) -> bool:
    """Whether the fused kernel (one example's [n, k] result in one program) takes x."""
    block_k = _block(k)
    tile = _block(x.shape[1]) * block_k
    width = 4 if x.dtype == torch.float32 else 2
    return block_k <= FUSED_MAX_K[width] and tile <= FUSED_MAX_TILE[(kernel, width)]


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter runs programs one after another


def _persistent_programs(x: torch.Tensor) -> int:
    """Programs of the backward kernels that reduce over the batch (one partial each)."""
    return max(1, min(x.shape[0], 2 * _sm_count(x.device)))


def _example_programs(B: int, block_n: int) -> int:
    """Programs of a grid over B; small feature counts pack several examples into one."""
    per_program = max(1, 64 // block_n)
    return triton.cdiv(B, per_program)


# ------------------------------------------------------------------------------------
# The tiled path: shapes whose [n, k] result does not fit one program's registers


@triton.jit
def _bmm_kernel(
    c_ptr,  # [BATCH, M, N] (REDUCE: [num_programs(0), M, N] partials), strides stride_c*
    a_ptr,  # [BATCH, M, K], any strides (stride_ab = 0: one matrix for the whole batch)
    b_ptr,  # [BATCH, K, N], any strides
    a2_ptr,  # [BATCH, M, K2]: the second product's operands (TWO)
    b2_ptr,  # [BATCH, K2, N]
    op_ptr,  # any tensor of the dots' operand dtype (x's)
    M,
    N,
    K,
    K2,
    BATCH,
    stride_cb,
    stride_cm,
    stride_cn,
    stride_ab,
    stride_am,
    stride_ak,
    stride_bb,
    stride_bk,
    stride_bn,
    stride_a2b,
    stride_a2m,
    stride_a2k,
    stride_b2b,
    stride_b2k,
    stride_b2n,
    TWO: tl.constexpr,  # c = a b + a2 b2
    SPLIT_B: tl.constexpr,  # b is fp32, carried as a hi + lo pair of 16-bit operands
    REDUCE: tl.constexpr,  # program p sums its batches p, p + num_programs(0), ...
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    K_TILES: tl.constexpr,  # cdiv(K, BLOCK_K)
    K2_TILES: tl.constexpr,  # cdiv(K2, BLOCK_K) (TWO)
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    op_ty = op_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    bb = pid
    while bb < BATCH:
        for kt in range(K_TILES):
            ok = kt * BLOCK_K + offs_k
            a = _load_rows(a_ptr + bb * stride_ab, offs_m, ok, M, K, stride_am, stride_ak)
            b = _load_rows(b_ptr + bb * stride_bb, ok, offs_n, K, N, stride_bk, stride_bn)
            a = _cast(a, op_ty, INTERPRETER)
            b_hi = _cast(b, op_ty, INTERPRETER)
            acc = _dot(a, b_hi, acc, INTERPRETER)
            if SPLIT_B and op_ty != tl.float32:  # b_hi's rounding error: the product to ~fp32
                b_lo = _cast(b.to(tl.float32) - b_hi.to(tl.float32), op_ty, INTERPRETER)
                acc = _dot(a, b_lo, acc, INTERPRETER)
        if TWO:
            for kt in range(K2_TILES):
                ok = kt * BLOCK_K + offs_k
                a = _load_rows(a2_ptr + bb * stride_a2b, offs_m, ok, M, K2, stride_a2m, stride_a2k)
                b = _load_rows(b2_ptr + bb * stride_b2b, ok, offs_n, K2, N, stride_b2k, stride_b2n)
                a = _cast(a, op_ty, INTERPRETER)
                acc = _dot(a, _cast(b, op_ty, INTERPRETER), acc, INTERPRETER)
        bb += tl.num_programs(0) if REDUCE else BATCH
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = c_ptr + pid * stride_cb + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(ptrs, _cast(acc, c_ptr.dtype.element_ty, INTERPRETER), mask=mask)


def _bmm(c, a, b, op, a2=None, b2=None, split_b=False, reduce=False) -> None:
    """c[i] = a[i] b[i] (+ a2[i] b2[i]) over a batch, or with reduce the per-program
    partials c[p] = sum of a[i] b[i] over i = p, p + P, ... (P = c.shape[0]). Operands of
    any strides (a batch stride 0 shares one matrix), cast to op's dtype for the dots;
    fp32 accumulation, one cast to c's dtype."""
    batch, M, K = a.shape
    N = b.shape[2]
    K2 = a2.shape[2] if a2 is not None else 0
    fp32 = op.dtype == torch.float32
    block_k = _block(max(K, K2), 16 if fp32 else 32)
    config = dict(
        BLOCK_M=_block(M, TILED_MAX_BLOCK),
        BLOCK_N=_block(N, TILED_MAX_BLOCK),
        BLOCK_K=block_k,
        K_TILES=triton.cdiv(K, block_k),
        K2_TILES=triton.cdiv(K2, block_k),
        num_warps=8 if fp32 else 4,  # fp32 (FMA) dots at 4 warps spill (8 B)
    )
    grid = (c.shape[0], triton.cdiv(M, config["BLOCK_M"]), triton.cdiv(N, config["BLOCK_N"]))
    _bmm_kernel[grid](
        c,
        a,
        b,
        a2 if a2 is not None else a,
        b2 if b2 is not None else b,
        op,
        M,
        N,
        K,
        K2,
        batch,
        *c.stride(),
        *a.stride(),
        *b.stride(),
        *(a2.stride() if a2 is not None else (0, 0, 0)),
        *(b2.stride() if b2 is not None else (0, 0, 0)),
        TWO=a2 is not None,
        SPLIT_B=split_b,
        REDUCE=reduce,
        INTERPRETER=_interpreter(),
        **config,
    )


def _row_param(t: torch.Tensor | None) -> torch.Tensor | None:
    """A norm parameter [n * k] as the row kernels' [1, n * k]."""
    return t.unsqueeze(0) if t is not None else None


def _tiled_project(x: torch.Tensor, proj: torch.Tensor, split_t: bool, dtype) -> torch.Tensor:
    """F = x (x^T P) [B, n, k] in dtype as two batched products through T = x^T P [B, d, k]
    (in x's dtype, or fp32 carried as hi + lo with split_t: _project's SPLIT_T)."""
    B, n, d = x.shape
    k = proj.shape[1]
    t = x.new_empty((B, d, k), dtype=torch.float32 if split_t else x.dtype)
    _bmm(t, x.transpose(1, 2), proj.expand(B, n, k), x)
    f = x.new_empty((B, n, k), dtype=dtype)
    _bmm(f, x, t, x, split_b=split_t)
    return f


def _tiled_grads(g: torch.Tensor, x: torch.Tensor, proj: torch.Tensor):
    """_projected_grads over the whole batch as batched products: (grad_x, grad_proj fp32)
    with T = x^T P and gT = x^T G (both rounded to x's dtype), grad_x = G T^T + P gT^T and
    grad_proj = sum_b x gT (per-program partials summed in torch)."""
    B, n, d = x.shape
    k = proj.shape[1]
    xt, p = x.transpose(1, 2), proj.expand(B, n, k)
    t = x.new_empty((B, d, k))
    gt = x.new_empty((B, d, k))
    _bmm(t, xt, p, x)
    _bmm(gt, xt, g, x)
    grad_x = x.new_empty((B, n, d))
    _bmm(grad_x, g, t.transpose(1, 2), x, a2=p, b2=gt.transpose(1, 2))
    partial = x.new_empty((_persistent_programs(x), n, k), dtype=torch.float32)
    _bmm(partial, x, gt, x, reduce=True)
    return grad_x, partial.sum(0)


# ------------------------------------------------------------------------------------
# fm_pairwise


@triton.jit
def _fm_pairwise_fwd_kernel(
    out_ptr,  # [B, P] x.dtype, contiguous
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    B,
    n,
    d,
    P,
    stride_xb,
    stride_xn,
    stride_xd,
    OFFSET: tl.constexpr,  # 1: pairs i < j; 0: i <= j (include_self)
    BLOCK_T: tl.constexpr,  # features per tile (rows i and columns j)
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    NUM_TILES: tl.constexpr,  # cdiv(n, BLOCK_T)
    INTERPRETER: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # this program's first example
    rt = tl.arange(0, BLOCK_T)
    while b < B:
        x_b = x_ptr + b * stride_xb
        out_b = out_ptr + b * P
        for ti in range(NUM_TILES):
            offs_i = ti * BLOCK_T + rt
            for tj in range(ti, NUM_TILES):  # upper-triangle tiles only
                offs_j = tj * BLOCK_T + rt
                acc = tl.zeros((BLOCK_T, BLOCK_T), dtype=tl.float32)
                for c in range(D_CHUNKS):
                    offs_d = c * BLOCK_D + tl.arange(0, BLOCK_D)
                    xi = _load_rows(x_b, offs_i, offs_d, n, d, stride_xn, stride_xd)
                    if NUM_TILES == 1:
                        xj = xi
                    else:
                        xj = _load_rows(x_b, offs_j, offs_d, n, d, stride_xn, stride_xd)
                    acc = _dot(xi, tl.trans(xj), acc, INTERPRETER)
                i = offs_i[:, None]
                j = offs_j[None, :]
                mask = (j < n) & (j >= i + OFFSET)
                p = _pair_index(i, j, n, OFFSET)
                tl.store(out_b + p, _cast(acc, out_ptr.dtype.element_ty, INTERPRETER), mask=mask)
        b += tl.num_programs(0)


def fm_pairwise_fwd(x: torch.Tensor, include_self: bool) -> torch.Tensor:
    """out[b, p] = <x[b, i], x[b, j]> for the p-th pair of torch.triu_indices(n, n, 0 or 1).

    Grid over B (several examples a program when n is small); the Gram matrix in tiles of
    up to 128 features, upper-triangle tiles only, chunked over d; fp32 accumulation.
    """
    B, n, d = x.shape
    offset = 0 if include_self else 1
    P = n * (n + 1) // 2 if include_self else n * (n - 1) // 2
    out = torch.empty((B, P), device=x.device, dtype=x.dtype)
    if P == 0:
        return out
    config = _pairwise_config(x)
    programs = _example_programs(B, config["BLOCK_T"])
    _fm_pairwise_fwd_kernel[(programs,)](
        out,
        x,
        B,
        n,
        d,
        P,
        *x.stride(),
        OFFSET=offset,
        INTERPRETER=_interpreter(),
        **config,
    )
    return out


@triton.jit
def _fm_pairwise_bwd_kernel(
    gx_ptr,  # [B, n, d] x.dtype, contiguous
    g_ptr,  # [B, P] x.dtype, strides (stride_gb, stride_gp)
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    B,
    n,
    d,
    stride_gb,
    stride_gp,
    stride_xb,
    stride_xn,
    stride_xd,
    OFFSET: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    NUM_TILES: tl.constexpr,
    INTERPRETER: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # this program's first example
    rt = tl.arange(0, BLOCK_T)
    while b < B:
        x_b = x_ptr + b * stride_xb
        g_b = g_ptr + b * stride_gb
        gx_b = gx_ptr + b * n * d
        for ti in range(NUM_TILES):
            offs_i = ti * BLOCK_T + rt
            for c in range(D_CHUNKS):
                offs_d = c * BLOCK_D + tl.arange(0, BLOCK_D)
                acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
                for tj in range(NUM_TILES):
                    offs_j = tj * BLOCK_T + rt
                    # S'[i, j] = g[pair(min, max)], twice on the diagonal (self pairs).
                    i = offs_i[:, None]
                    j = offs_j[None, :]
                    lo = tl.minimum(i, j)
                    hi = tl.maximum(i, j)
                    valid = (hi < n) & (hi >= lo + OFFSET)
                    s = tl.load(
                        g_b + _pair_index(lo, hi, n, OFFSET) * stride_gp, mask=valid, other=0.0
                    )
                    # doubled in fp32 (exact), since the interpreter has no bf16 arithmetic
                    s = s.to(tl.float32)
                    s = tl.where(i == j, s + s, s).to(x_ptr.dtype.element_ty)  # [BLOCK_T, BLOCK_T]
                    xj = _load_rows(x_b, offs_j, offs_d, n, d, stride_xn, stride_xd)
                    acc = _dot(s, xj, acc, INTERPRETER)
                mask = (offs_i[:, None] < n) & (offs_d[None, :] < d)
                ptrs = gx_b + offs_i[:, None] * d + offs_d[None, :]
                tl.store(ptrs, _cast(acc, gx_ptr.dtype.element_ty, INTERPRETER), mask=mask)
        b += tl.num_programs(0)


def fm_pairwise_bwd(grad: torch.Tensor, x: torch.Tensor, include_self: bool) -> torch.Tensor:
    """grad_x = (S + S^T) x, S[i, j] = grad of pair (i, j) (a self pair counts twice).

    Grid over B; for each tile of rows i and chunk of d, the symmetric pair-gradient tile is
    gathered from grad and multiplied with the x tile of columns j; fp32 accumulation.
    """
    B, n, d = x.shape
    grad_x = torch.empty((B, n, d), device=x.device, dtype=x.dtype)
    if grad.shape[1] == 0:  # n = 1 without self pairs: nothing depends on x
        return grad_x.zero_()
    offset = 0 if include_self else 1
    config = _pairwise_config(x)
    programs = _example_programs(B, config["BLOCK_T"])
    _fm_pairwise_bwd_kernel[(programs,)](
        grad_x,
        grad,
        x,
        B,
        n,
        d,
        *grad.stride(),
        *x.stride(),
        OFFSET=offset,
        INTERPRETER=_interpreter(),
        **config,
    )
    return grad_x


# ------------------------------------------------------------------------------------
# fm_projected


@triton.jit
def _fm_projected_fwd_kernel(
    out_ptr,  # [B, n, k] x.dtype, contiguous
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    p_ptr,  # [n, k] x.dtype or fp32, contiguous
    B,
    n,
    d,
    k,
    stride_xb,
    stride_xn,
    stride_xd,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    INTERPRETER: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # this program's first example
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    p = _load_rows(p_ptr, offs_n, offs_k, n, k, k, 1)
    p = _cast(p, x_ptr.dtype.element_ty, INTERPRETER)  # the dots' operand dtype
    mask = (offs_n[:, None] < n) & (offs_k[None, :] < k)
    while b < B:
        f = _project(
            x_ptr + b * stride_xb,
            p,
            n,
            d,
            stride_xn,
            stride_xd,
            BLOCK_N,
            BLOCK_K,
            BLOCK_D,
            D_CHUNKS,
            False,
            INTERPRETER,
        )
        ptrs = out_ptr + b * n * k + offs_n[:, None] * k + offs_k[None, :]
        tl.store(ptrs, _cast(f, out_ptr.dtype.element_ty, INTERPRETER), mask=mask)
        b += tl.num_programs(0)


def fm_projected_fwd(x: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """out = x (x^T proj) [B, n, k], never forming x x^T.

    Grid over B (several examples a program when n is small), proj loaded once a program;
    per example a loop over chunks of d: T_c = x_c^T P, F += x_c T_c, the [n, k] result in
    fp32 registers.
    """
    B, n, d = x.shape
    k = proj.shape[1]
    if not _fused(x, k, "fwd"):
        return _tiled_project(x, proj, False, x.dtype)
    out = torch.empty((B, n, k), device=x.device, dtype=x.dtype)
    config = _projected_config(x, k, backward=False, norm=False)
    programs = _example_programs(B, config["BLOCK_N"])
    _fm_projected_fwd_kernel[(programs,)](
        out,
        x,
        proj.contiguous(),
        B,
        n,
        d,
        k,
        *x.stride(),
        INTERPRETER=_interpreter(),
        **config,
    )
    return out


@triton.jit
def _fm_projected_bwd_kernel(
    gx_ptr,  # [B, n, d] x.dtype, contiguous
    gp_part_ptr,  # [num_programs, n, k] fp32: per-program partial grad_proj
    g_ptr,  # [B, n, k] x.dtype, strides (stride_gb, stride_gn, stride_gk)
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    p_ptr,  # [n, k] x.dtype or fp32, contiguous
    B,
    n,
    d,
    k,
    stride_gb,
    stride_gn,
    stride_gk,
    stride_xb,
    stride_xn,
    stride_xd,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    b = pid  # this program's first example; it owns row pid of the partials
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    p = _load_rows(p_ptr, offs_n, offs_k, n, k, k, 1)
    p = _cast(p, x_ptr.dtype.element_ty, INTERPRETER)  # the dots' operand dtype
    gp_acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    while b < B:
        g = _load_rows(g_ptr + b * stride_gb, offs_n, offs_k, n, k, stride_gn, stride_gk)
        gp_acc = _projected_grads(
            gx_ptr + b * n * d,
            x_ptr + b * stride_xb,
            g,
            p,
            gp_acc,
            n,
            d,
            stride_xn,
            stride_xd,
            BLOCK_N,
            BLOCK_K,
            BLOCK_D,
            D_CHUNKS,
            INTERPRETER,
        )
        b += tl.num_programs(0)
    mask = (offs_n[:, None] < n) & (offs_k[None, :] < k)
    ptrs = gp_part_ptr + pid * n * k + offs_n[:, None] * k + offs_k[None, :]
    tl.store(ptrs, gp_acc, mask=mask)


def fm_projected_bwd(
    grad: torch.Tensor, x: torch.Tensor, proj: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_proj) of fm_projected: with T = x^T P and gT = x^T G,
    grad_x = G T^T + P gT^T and grad_proj = sum_b x gT.

    Persistent grid (about two programs an SM), each looping over its examples and chunks
    of d; grad_proj accumulates in fp32 registers per program, then the per-program
    partials are summed in torch (deterministic).
    """
    B, n, d = x.shape
    k = proj.shape[1]
    if not _fused(x, k, "bwd"):
        grad_x, grad_proj = _tiled_grads(grad, x, proj)
        return grad_x, grad_proj.to(proj.dtype)
    grad_x = torch.empty((B, n, d), device=x.device, dtype=x.dtype)
    programs = _persistent_programs(x)
    partial = torch.empty((programs, n, k), device=x.device, dtype=torch.float32)
    config = _projected_config(x, k, backward=True, norm=False)
    _fm_projected_bwd_kernel[(programs,)](
        grad_x,
        partial,
        grad,
        x,
        proj.contiguous(),
        B,
        n,
        d,
        k,
        *grad.stride(),
        *x.stride(),
        INTERPRETER=_interpreter(),
        **config,
    )
    return grad_x, partial.sum(0).to(proj.dtype)


# ------------------------------------------------------------------------------------
# fm_projected_norm


@triton.jit
def _norm_stats(f, mask, count, eps):
    """(xhat, rstd) of a layer norm over the `count` valid entries of the fp32 tile f;
    xhat is zero outside mask."""
    mean = tl.sum(f) / count
    diff = tl.where(mask, f - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(diff * diff) / count + eps)
    return diff * rstd, rstd


@triton.jit
def _fm_projected_norm_fwd_kernel(
    out_ptr,  # [B, n * k] x.dtype, contiguous
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    p_ptr,  # [n, k] x.dtype or fp32, contiguous
    w_ptr,  # [n * k] x.dtype or fp32 (unused without HAS_WEIGHT)
    bias_ptr,  # [n * k] x.dtype or fp32 (unused without HAS_BIAS)
    B,
    n,
    d,
    k,
    stride_xb,
    stride_xn,
    stride_xd,
    eps,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    INTERPRETER: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # this program's first example
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask = (offs_n[:, None] < n) & (offs_k[None, :] < k)
    feat = offs_n[:, None] * k + offs_k[None, :]  # [BLOCK_N, BLOCK_K] flattened feature
    p = _load_rows(p_ptr, offs_n, offs_k, n, k, k, 1)
    p = _cast(p, x_ptr.dtype.element_ty, INTERPRETER)  # the dots' operand dtype
    if HAS_WEIGHT:
        w = tl.load(w_ptr + feat, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + feat, mask=mask, other=0.0).to(tl.float32)
    while b < B:
        f = _project(
            x_ptr + b * stride_xb,
            p,
            n,
            d,
            stride_xn,
            stride_xd,
            BLOCK_N,
            BLOCK_K,
            BLOCK_D,
            D_CHUNKS,
            True,
            INTERPRETER,
        )
        y, _ = _norm_stats(f, mask, n * k, eps)
        if HAS_WEIGHT:
            y = y * w
        if HAS_BIAS:
            y = y + bias
        tl.store(
            out_ptr + b * n * k + feat, _cast(y, out_ptr.dtype.element_ty, INTERPRETER), mask=mask
        )
        b += tl.num_programs(0)


def fm_projected_norm_fwd(
    x: torch.Tensor,
    proj: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """layer_norm(flatten(x (x^T proj))) over the n * k features, with optional weight/bias.

    fm_projected_fwd's program with the norm fused: the [n, k] row stays in fp32 registers,
    its mean and variance are taken there and only the normalized row is written.
    """
    B, n, d = x.shape
    k = proj.shape[1]
    if not _fused(x, k, "norm_fwd"):  # F in fp32, then a row kernel's two-pass statistics
        f = _tiled_project(x, proj, True, torch.float32).view(1, B, n * k)
        out = torch.empty((1, B, n * k), device=x.device, dtype=x.dtype)
        _norm_rows_fwd(out, f, _row_param(weight), _row_param(bias), "layer", eps)
        return out[0]
    out = torch.empty((B, n * k), device=x.device, dtype=x.dtype)
    config = _projected_config(x, k, backward=False, norm=True)
    programs = _example_programs(B, config["BLOCK_N"])
    _fm_projected_norm_fwd_kernel[(programs,)](
        out,
        x,
        proj.contiguous(),
        weight.contiguous() if weight is not None else x,
        bias.contiguous() if bias is not None else x,
        B,
        n,
        d,
        k,
        *x.stride(),
        float(eps),
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        INTERPRETER=_interpreter(),
        **config,
    )
    return out


@triton.jit
def _fm_projected_norm_bwd_kernel(
    gx_ptr,  # [B, n, d] x.dtype, contiguous
    gp_part_ptr,  # [num_programs, n, k] fp32: per-program partial grad_proj
    gw_part_ptr,  # [num_programs, n * k] fp32: partial grad_weight (if HAS_WEIGHT)
    gb_part_ptr,  # [num_programs, n * k] fp32: partial grad_bias (if HAS_BIAS)
    dy_ptr,  # [B, n * k] x.dtype, strides (stride_gb, stride_gf)
    x_ptr,  # [B, n, d] strides (stride_xb, stride_xn, stride_xd)
    p_ptr,  # [n, k] x.dtype or fp32, contiguous
    w_ptr,  # [n * k] x.dtype or fp32 (unused without HAS_WEIGHT)
    B,
    n,
    d,
    k,
    stride_gb,
    stride_gf,
    stride_xb,
    stride_xn,
    stride_xd,
    eps,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    D_CHUNKS: tl.constexpr,  # cdiv(d, BLOCK_D)
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    b = pid  # this program's first example; it owns row pid of the partials
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask = (offs_n[:, None] < n) & (offs_k[None, :] < k)
    feat = offs_n[:, None] * k + offs_k[None, :]  # [BLOCK_N, BLOCK_K] flattened feature
    count = n * k
    p = _load_rows(p_ptr, offs_n, offs_k, n, k, k, 1)
    p = _cast(p, x_ptr.dtype.element_ty, INTERPRETER)  # the dots' operand dtype
    if HAS_WEIGHT:
        w = tl.load(w_ptr + feat, mask=mask, other=0.0).to(tl.float32)
    gp_acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    gw_acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    gb_acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    while b < B:
        x_b = x_ptr + b * stride_xb
        # Pass 1 over x: recompute F and its statistics.
        f = _project(
            x_b,
            p,
            n,
            d,
            stride_xn,
            stride_xd,
            BLOCK_N,
            BLOCK_K,
            BLOCK_D,
            D_CHUNKS,
            True,
            INTERPRETER,
        )
        xhat, rstd = _norm_stats(f, mask, count, eps)
        dy = tl.load(dy_ptr + b * stride_gb + feat * stride_gf, mask=mask, other=0.0)
        dy = dy.to(tl.float32)
        if HAS_WEIGHT:
            h = dy * w
            gw_acc += dy * xhat
        else:
            h = dy
        if HAS_BIAS:
            gb_acc += dy
        mean_h = tl.sum(h) / count
        mean_hx = tl.sum(h * xhat) / count
        df = tl.where(mask, rstd * (h - mean_h - xhat * mean_hx), 0.0)
        # Pass 2 over x: the projected backward with G = dF.
        g = _cast(df, p.dtype, INTERPRETER)
        gp_acc = _projected_grads(
            gx_ptr + b * n * d,
            x_b,
            g,
            p,
            gp_acc,
            n,
            d,
            stride_xn,
            stride_xd,
            BLOCK_N,
            BLOCK_K,
            BLOCK_D,
            D_CHUNKS,
            INTERPRETER,
        )
        b += tl.num_programs(0)
    tl.store(gp_part_ptr + pid * count + feat, gp_acc, mask=mask)
    if HAS_WEIGHT:
        tl.store(gw_part_ptr + pid * count + feat, gw_acc, mask=mask)
    if HAS_BIAS:
        tl.store(gb_part_ptr + pid * count + feat, gb_acc, mask=mask)


def fm_projected_norm_bwd(
    grad: torch.Tensor,
    x: torch.Tensor,
    proj: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_proj, grad_weight, grad_bias) of fm_projected_norm; the last two are
    empty when the parameter is absent.

    Persistent grid; per example the program recomputes F = x (x^T P) (one pass over x),
    takes the layer-norm backward dF = rstd (h - mean(h) - xhat mean(h xhat)), h = dy w, in
    fp32 registers, then runs the projected backward with G = dF (a second pass over x).
    grad_proj, grad_weight and grad_bias accumulate per program in fp32 and the partials
    are summed in torch (deterministic).
    """
    B, n, d = x.shape
    k = proj.shape[1]
    empty = x.new_empty(0)
    if not _fused(x, k, "norm_bwd"):
        # F (fp32) recomputed, dF from a row kernel (two-pass statistics), then the
        # projected backward with G = dF.
        f = _tiled_project(x, proj, True, torch.float32).view(1, B, n * k)
        df = torch.empty_like(f)
        w = _row_param(weight)
        part = _norm_rows_bwd(df, f, grad.unsqueeze(0), w, bias is not None, False, "layer", eps)
        sums = part.sum(1)[0]  # [3, n * k]: grad_weight, grad_bias, (unused)
        grad_x, grad_proj = _tiled_grads(df.view(B, n, k), x, proj)
        grad_w = sums[0].to(weight.dtype) if weight is not None else empty
        grad_b = sums[1].to(bias.dtype) if bias is not None else empty
        return grad_x, grad_proj.view(n, k).to(proj.dtype), grad_w, grad_b
    grad_x = torch.empty((B, n, d), device=x.device, dtype=x.dtype)
    programs = _persistent_programs(x)
    part = functools.partial(torch.empty, device=x.device, dtype=torch.float32)
    gp_part = part((programs, n * k))
    gw_part = part((programs, n * k)) if weight is not None else gp_part
    gb_part = part((programs, n * k)) if bias is not None else gp_part
    config = _projected_config(x, k, backward=True, norm=True)
    _fm_projected_norm_bwd_kernel[(programs,)](
        grad_x,
        gp_part,
        gw_part,
        gb_part,
        grad,
        x,
        proj.contiguous(),
        weight.contiguous() if weight is not None else x,
        B,
        n,
        d,
        k,
        *grad.stride(),
        *x.stride(),
        float(eps),
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        INTERPRETER=_interpreter(),
        **config,
    )
    grad_proj = gp_part.sum(0).view(n, k).to(proj.dtype)
    grad_w = gw_part.sum(0).to(weight.dtype) if weight is not None else empty
    grad_b = gb_part.sum(0).to(bias.dtype) if bias is not None else empty
    return grad_x, grad_proj, grad_w, grad_b
