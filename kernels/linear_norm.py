"""Triton kernels of the linear + norm ops (the ``triton`` backend of
recperf.ops.linear_norm and of recperf.ops.fp8's ``fp8_gemm``).

Launchers, one per kernel of :mod:`recperf.ops.linear_norm_backends` and
:mod:`recperf.ops.fp8_backends`: ``fp8_gemm``, ``linear_norm_fwd``, ``linear_norm_bwd``,
``grouped_linear_norm_fwd``, ``grouped_linear_norm_bwd``. Their math and return
conventions are those of :mod:`recperf.ops.linear_norm_ref` and
:mod:`recperf.ops.fp8_ref`; the precision of each GEMM is the recipe's
(:mod:`recperf.ops.recipes`).

Design
------
* One GEMM kernel, ``_gemm_kernel``, serves every GEMM: out[g] = a[g] . b[g]^T with
  a [G, M, K] and b [G, N, K] of any strides (so dgrad's W^T and wgrad's dz^T and x^T are
  strided views, never copies), G on grid axis 2, [BLOCK_M, BLOCK_N] output tiles on axes
  0 and 1, a constexpr count of BLOCK_K steps over K, fp32 accumulation. Constexpr
  switches pick the operand precision (fp32 with ``input_precision="ieee"``, no tf32;
  bf16, cast in-kernel with round-to-nearest-even; fp8 codes quantized beforehand) and
  the epilogue:
    - STORE: acc * (sa[m] * sb[n]) (fp8 only; a tensor-wise scale is a row scale of row
      stride 0) + bias[n] + residual[m, n], cast once to the output's dtype;
    - NORM_FWD: the same z, then the layer / RMS norm of each row and its affine, in fp32
      registers: needs the whole row of N in one tile (N <= FUSED_MAX_N);
    - NORM_BWD: the same z (the recomputed pre-norm activations), then the norm's
      backward with the incoming grad: writes dz (fp32) and per-M-tile column partials of
      dnorm_weight = sum dy * zhat, dnorm_bias = sum dy and dbias = sum dz, summed
      afterwards in torch (deterministic, no atomics).
  For N > FUSED_MAX_N the GEMM stores z (fp32, bias and residual added) and a row kernel
  (``_norm_rows_fwd_kernel`` / ``_norm_rows_bwd_kernel``) takes the norm: whole rows in
  one register tile up to ROWS_MAX_C (the fused epilogue's math), else chunk by chunk
  with two-pass statistics (mean, then the centred variance). The backward row kernel is
  persistent (about 8 programs an SM), each program owning one row of column partials.
* Split-K: a GEMM whose output has too few tiles to fill the device while its K is long
  (the weight gradient, [N, K] out, M contracted) splits K over grid axis 2 too; the
  fp32 partial products are summed in torch in a fixed order (deterministic), cast once.
* FP8 recipes quantize each operand first with ``recperf.kernels.fp8.quantize_fp8``
  (bit-exact with the reference; the reference itself if that module is missing), exactly
  as ``linear_norm_ref.gemm`` does: forward x and W per row (e4m3); dgrad dz per row
  (e5m2) and W^T, i.e. per column of W (e4m3); wgrad dz^T and x^T, per column of each.
  The quantizer writes its codes contiguous along the contracted dim, so both fp8 dot
  operands are K-major, the layout Hopper's fp8 wgmma takes. The scales multiply the
  accumulator in the epilogue, as in the reference: acc * (sa * sb). On sm_90 the fp8
  dot promotes its tensor-core partial sums into the fp32 accumulator every
  ``FP8_PROMOTE_K`` products (``max_num_imprecise_acc``), as cuBLAS does without
  fast accumulation; within a promotion the fp8 wgmma's own accumulation is not IEEE
  fp32 (the GPU tests' tolerance allows for it; under the interpreter and on mma.sync
  tiles it is exact to fp32 rounding).
  Grouped operands are quantized in one launch as [G * rows, cols]
  (row-wise scales do not cross groups); tensor-wise scales are per group, from the
  reference's torch arithmetic over [G, ...].
* The backward recomputes z in the forward's precision (the pre-norm activations are not
  saved), fused with the norm backward when the row fits one tile; with norm="none",
  dz = grad and no GEMM is recomputed.
* Triton 3.6 interpreter workarounds (``INTERPRETER``): its ``tl.dot`` on bf16 is wrong,
  so bf16 operands are rounded to bf16 in fp32 (exact) and fp8 codes upcast to fp32
  (exact), and dotted in fp32; its fp32 -> bf16 cast truncates, so outputs are rounded
  on the fp32 bits first. Loops with a runtime bound are ``while`` loops (``range`` with
  a runtime bound crashes the interpreter under NumPy >= 2.4).
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

from recperf.ops.fp8_ref import quantize_fp8_batched
from recperf.ops.recipes import GemmPrecision, recipe

# Largest N whose rows are normalized in the GEMM's epilogue (one [BLOCK_M, N] fp32 tile
# in registers); larger N takes the two-pass path. Tests lower it to exercise that path.
FUSED_MAX_N = 256
# fp8 products the tensor core sums before a promotion into the fp32 accumulator (sm_90).
FP8_PROMOTE_K = 128
# Shared memory (bytes) the GEMM's pipeline stages may take on sm_90 (228 KB per SM).
SMEM_BUDGET = 160 * 1024
# Widest chunk of a row the two-pass row kernels take at once (tests lower it).
ROWS_MAX_C = 4096
# Test hook: the split-K factor of the dgrad / wgrad GEMMs (None: from the shape).
SPLIT_K_OVERRIDE: int | None = None
# Test hook: set False to run native 16-bit / fp8 dots under the interpreter.
UPCAST_DOTS_UNDER_INTERPRETER = True

_PRECISION = {"fp32": 0, "bf16": 1, "fp8": 2}
STORE, NORM_FWD, NORM_BWD = 0, 1, 2
_NORM = {"layer": 0, "rms": 1, "none": 2}


# ------------------------------------------------------------------------------------
# Device helpers


@triton.jit
def _round_bf16(v):
    """fp32 v rounded to the nearest bf16 (ties to even), kept in fp32: the interpreter's
    own fp32 -> bf16 cast truncates."""
    u = v.to(tl.uint32, bitcast=True)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.to(tl.float32, bitcast=True)


@triton.jit
def _cast(v, dtype: tl.constexpr, INTERPRETER: tl.constexpr):
    """fp32 v cast to dtype, rounding to nearest even (also under the interpreter)."""
    if INTERPRETER and dtype == tl.bfloat16:
        v = _round_bf16(v)
    return v.to(dtype)


@triton.jit
def _operand(tile, PRECISION: tl.constexpr, INTERPRETER: tl.constexpr):
    """A loaded tile as a dot operand of the GEMM's precision: fp32, bf16 (rounded to
    nearest even), or the fp8 codes themselves. Under the interpreter bf16 and fp8 are
    carried in fp32 (exactly: the values are representable) since its bf16 dot is wrong."""
    if PRECISION == 0:
        out = tile.to(tl.float32)
    elif PRECISION == 1:
        if INTERPRETER:
            out = _round_bf16(tile.to(tl.float32))
        else:
            out = tile.to(tl.float32).to(tl.bfloat16)
    else:
        out = tile.to(tl.float32) if INTERPRETER else tile
    return out


@triton.jit
def _mma(a, b, acc, PRECISION: tl.constexpr, PROMOTE_K: tl.constexpr):
    """acc + a @ b in fp32: ieee fp32 (no tf32), bf16 tensor cores, or fp8 tensor cores
    promoting into acc every PROMOTE_K products."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, acc, input_precision="ieee")
    elif PRECISION == 2:
        out = tl.dot(a, b, acc, max_num_imprecise_acc=PROMOTE_K)
    else:
        out = tl.dot(a, b, acc)
    return out


@triton.jit
def _normalize(z, mask, n, eps, NORM: tl.constexpr):
    """(zhat, rstd) of the rows of the fp32 tile z (zero outside mask) over their n valid
    entries: layer norm (two-pass: mean, then the centred variance) or RMS norm. zhat is
    zero outside mask (padding rows would otherwise give 0 * inf with eps = 0)."""
    if NORM == 0:
        mean = tl.sum(z, axis=1) / n
        diff = tl.where(mask, z - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(diff * diff, axis=1) / n + eps)
        zhat = diff * rstd[:, None]
    else:
        rstd = 1.0 / tl.sqrt(tl.sum(z * z, axis=1) / n + eps)
        zhat = z * rstd[:, None]
    return tl.where(mask, zhat, 0.0), rstd


@triton.jit
def _vector(ptr, offs, n, stride, other):
    """Entries offs (masked to < n) of a vector with the given stride, as fp32."""
    return tl.load(ptr + offs * stride, mask=offs < n, other=other).to(tl.float32)


# ------------------------------------------------------------------------------------
# The GEMM kernel and its epilogues


@triton.jit
def _gemm_kernel(
    out_ptr,  # [G * SPLIT, M, N] strides (stride_og, stride_om, stride_on): y, z, dz, a GEMM
    a_ptr,  # [G, M, K] strides (stride_ag, stride_am, stride_ak)
    b_ptr,  # [G, N, K] strides (stride_bg, stride_bn, stride_bk)
    sa_ptr,  # [G, M] fp32 scales of a, strides (stride_sag, stride_sam); stride 0: per tensor
    sb_ptr,  # [G, N] fp32 scales of b, strides (stride_sbg, stride_sbn)
    bias_ptr,  # [G, N] strides (stride_biasg, stride_biasn)
    res_ptr,  # [G, M, N] strides (stride_rg, stride_rm, stride_rn)
    nw_ptr,  # [G, N] norm weight, strides (stride_nwg, stride_nwn)
    nb_ptr,  # [G, N] norm bias, strides (stride_nbg, stride_nbn)
    dy_ptr,  # [G, M, N] incoming grad (NORM_BWD), strides (stride_dyg, stride_dym, stride_dyn)
    part_ptr,  # [G, cdiv(M, BLOCK_M), 3, N] fp32 column partials (NORM_BWD), contiguous
    M,
    N,
    K,
    SPLIT,  # programs sharing one output tile's K (fp32 partials; STORE only), usually 1
    eps,
    stride_og,
    stride_om,
    stride_on,
    stride_ag,
    stride_am,
    stride_ak,
    stride_bg,
    stride_bn,
    stride_bk,
    stride_sag,
    stride_sam,
    stride_sbg,
    stride_sbn,
    stride_biasg,
    stride_biasn,
    stride_rg,
    stride_rm,
    stride_rn,
    stride_nwg,
    stride_nwn,
    stride_nbg,
    stride_nbn,
    stride_dyg,
    stride_dym,
    stride_dyn,
    PRECISION: tl.constexpr,  # 0 fp32, 1 bf16, 2 fp8 (a, b hold fp8 codes)
    EPILOGUE: tl.constexpr,  # STORE, NORM_FWD or NORM_BWD
    NORM: tl.constexpr,  # 0 layer, 1 rms (NORM_FWD / NORM_BWD)
    HAS_SCALES: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RES: tl.constexpr,
    HAS_NW: tl.constexpr,
    HAS_NB: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,  # norm epilogues: >= N, the whole row in one tile
    BLOCK_K: tl.constexpr,
    K_TILES: tl.constexpr,  # BLOCK_K steps of each split: cdiv(cdiv(K, BLOCK_K), SPLIT)
    PROMOTE_K: tl.constexpr,  # fp8: products per promotion into the fp32 accumulator
    INTERPRETER: tl.constexpr,
):
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    pid_gs = tl.program_id(2).to(tl.int64)  # group g, split s of K (the output's index)
    g = pid_gs // SPLIT
    k_begin = (pid_gs % SPLIT) * (K_TILES * BLOCK_K)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = offs_m < M
    col_ok = offs_n < N
    a_rows = a_ptr + g * stride_ag + offs_m[:, None] * stride_am  # [BLOCK_M, 1]
    b_cols = b_ptr + g * stride_bg + offs_n[None, :] * stride_bn  # [1, BLOCK_N]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(K_TILES):
        offs_k = k_begin + kt * BLOCK_K + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        a = tl.load(
            a_rows + offs_k[None, :] * stride_ak, mask=row_ok[:, None] & k_ok[None, :], other=0.0
        )  # [BLOCK_M, BLOCK_K]
        b = tl.load(
            b_cols + offs_k[:, None] * stride_bk, mask=k_ok[:, None] & col_ok[None, :], other=0.0
        )  # [BLOCK_K, BLOCK_N]: b^T
        a = _operand(a, PRECISION, INTERPRETER)
        b = _operand(b, PRECISION, INTERPRETER)
        acc = _mma(a, b, acc, PRECISION, PROMOTE_K)

    # z = acc * (sa * sb) + bias + residual, in fp32, zero outside the [M, N] tile.
    mask = row_ok[:, None] & col_ok[None, :]
    z = acc
    if HAS_SCALES:
        sa = _vector(sa_ptr + g * stride_sag, offs_m, M, stride_sam, 1.0)
        sb = _vector(sb_ptr + g * stride_sbg, offs_n, N, stride_sbn, 1.0)
        z = z * (sa[:, None] * sb[None, :])
    if HAS_BIAS:
        z = z + _vector(bias_ptr + g * stride_biasg, offs_n, N, stride_biasn, 0.0)[None, :]
    if HAS_RES:
        res_ptrs = (
            res_ptr + g * stride_rg + offs_m[:, None] * stride_rm + offs_n[None, :] * stride_rn
        )
        z = z + tl.load(res_ptrs, mask=mask, other=0.0).to(tl.float32)
    out_rows = out_ptr + pid_gs * stride_og + offs_m[:, None] * stride_om  # [BLOCK_M, 1]
    out_ty = out_ptr.dtype.element_ty

    if EPILOGUE == 0:
        tl.store(out_rows + offs_n[None, :] * stride_on, _cast(z, out_ty, INTERPRETER), mask=mask)
    else:
        z = tl.where(mask, z, 0.0)
        zhat, rstd = _normalize(z, mask, N, eps, NORM)
        if HAS_NW:
            nw = _vector(nw_ptr + g * stride_nwg, offs_n, N, stride_nwn, 0.0)
        if EPILOGUE == 1:
            y = zhat
            if HAS_NW:
                y = y * nw[None, :]
            if HAS_NB:
                y = y + _vector(nb_ptr + g * stride_nbg, offs_n, N, stride_nbn, 0.0)[None, :]
            tl.store(
                out_rows + offs_n[None, :] * stride_on, _cast(y, out_ty, INTERPRETER), mask=mask
            )
        else:
            # Few [BLOCK_M, BLOCK_N] tiles live at once: the partials of dy go out first.
            dy_rows = dy_ptr + g * stride_dyg + offs_m[:, None] * stride_dym
            dy = tl.load(dy_rows + offs_n[None, :] * stride_dyn, mask=mask, other=0.0)
            dy = dy.to(tl.float32)
            part = part_ptr + (g * tl.num_programs(0) + pid_m) * 3 * N + offs_n  # [BLOCK_N]
            if HAS_NW:
                tl.store(part, tl.sum(dy * zhat, axis=0), mask=col_ok)
            if HAS_NB:
                tl.store(part + N, tl.sum(dy, axis=0), mask=col_ok)
            h = dy * nw[None, :] if HAS_NW else dy
            hz = tl.sum(h * zhat, axis=1) / N
            if NORM == 0:
                dz = rstd[:, None] * (h - (tl.sum(h, axis=1) / N)[:, None] - zhat * hz[:, None])
            else:
                dz = rstd[:, None] * (h - zhat * hz[:, None])
            dz = tl.where(mask, dz, 0.0)
            tl.store(out_rows + offs_n[None, :] * stride_on, dz, mask=mask)
            if HAS_BIAS:
                tl.store(part + 2 * N, tl.sum(dz, axis=0), mask=col_ok)


# ------------------------------------------------------------------------------------
# Row kernels of the two-pass path (N > FUSED_MAX_N): z [G, M, N] fp32 contiguous


@triton.jit
def _row_stats(
    z_rows,  # [BLOCK_R, 1] pointers to the rows of z (fp32, contiguous rows of N)
    row_ok,  # [BLOCK_R]
    N,
    eps,
    NORM: tl.constexpr,
    BLOCK_C: tl.constexpr,
    N_CHUNKS: tl.constexpr,
):
    """(mean, rstd) [BLOCK_R] of the rows over chunks of BLOCK_C columns: layer norm by
    two passes (mean, then the centred variance); RMS norm: mean 0, rstd from the mean
    square."""
    cols = tl.arange(0, BLOCK_C)
    s = tl.zeros_like(row_ok.to(tl.float32))
    for c in range(N_CHUNKS):
        offs_c = c * BLOCK_C + cols
        m = row_ok[:, None] & (offs_c < N)[None, :]
        z = tl.load(z_rows + offs_c[None, :], mask=m, other=0.0)
        s += tl.sum(z, axis=1) if NORM == 0 else tl.sum(z * z, axis=1)
    if NORM == 0:
        mean = s / N
        v = tl.zeros_like(s)
        for c in range(N_CHUNKS):
            offs_c = c * BLOCK_C + cols
            m = row_ok[:, None] & (offs_c < N)[None, :]
            z = tl.load(z_rows + offs_c[None, :], mask=m, other=0.0)
            d = tl.where(m, z - mean[:, None], 0.0)
            v += tl.sum(d * d, axis=1)
        rstd = 1.0 / tl.sqrt(v / N + eps)
    else:
        mean = tl.zeros_like(s)
        rstd = 1.0 / tl.sqrt(s / N + eps)
    return mean, rstd


@triton.jit
def _zhat_chunk(z_ptrs, mask, mean, rstd):
    """(z - mean) * rstd of a [BLOCK_R, BLOCK_C] chunk of z rows, zero outside mask."""
    z = tl.load(z_ptrs, mask=mask, other=0.0)
    return tl.where(mask, (z - mean[:, None]) * rstd[:, None], 0.0)


@triton.jit
def _norm_rows_fwd_kernel(
    y_ptr,  # [G, M, N] x.dtype, contiguous
    z_ptr,  # [G, M, N] fp32, contiguous
    nw_ptr,  # [G, N] strides (stride_nwg, stride_nwn)
    nb_ptr,  # [G, N] strides (stride_nbg, stride_nbn)
    M,
    N,
    eps,
    stride_nwg,
    stride_nwn,
    stride_nbg,
    stride_nbn,
    NORM: tl.constexpr,
    HAS_NW: tl.constexpr,
    HAS_NB: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    N_CHUNKS: tl.constexpr,  # cdiv(N, BLOCK_C)
    INTERPRETER: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    g = tl.program_id(1).to(tl.int64)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < M
    base = (g * M + rows)[:, None] * N  # [BLOCK_R, 1]
    cols = tl.arange(0, BLOCK_C)
    if N_CHUNKS > 1:
        mean, rstd = _row_stats(z_ptr + base, row_ok, N, eps, NORM, BLOCK_C, N_CHUNKS)
    for c in range(N_CHUNKS):
        offs_c = c * BLOCK_C + cols
        m = row_ok[:, None] & (offs_c < N)[None, :]
        if N_CHUNKS == 1:  # the rows fit one tile: read z once
            y, _ = _normalize(tl.load(z_ptr + base + offs_c[None, :], mask=m, other=0.0), m, N,
                              eps, NORM)  # fmt: skip
        else:
            y = _zhat_chunk(z_ptr + base + offs_c[None, :], m, mean, rstd)
        if HAS_NW:
            y = y * _vector(nw_ptr + g * stride_nwg, offs_c, N, stride_nwn, 0.0)[None, :]
        if HAS_NB:
            y = y + _vector(nb_ptr + g * stride_nbg, offs_c, N, stride_nbn, 0.0)[None, :]
        tl.store(
            y_ptr + base + offs_c[None, :], _cast(y, y_ptr.dtype.element_ty, INTERPRETER), mask=m
        )


@triton.jit
def _norm_rows_bwd_tile(
    dz_ptr,  # [G, M, N] fp32, contiguous
    part,  # [3, N] fp32: this program's column partials
    z_ptr,  # [G, M, N] fp32, contiguous
    dy_g,  # [M, N] group g's grad, strides (stride_dym, stride_dyn)
    nw_g,  # [N] group g's norm weight, stride stride_nwn
    g,
    pid,
    M,
    N,
    eps,
    stride_dym,
    stride_dyn,
    stride_nwn,
    NORM: tl.constexpr,
    HAS_NW: tl.constexpr,
    HAS_NB: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,  # >= N
):
    """_norm_rows_bwd_kernel when whole rows fit a [BLOCK_R, BLOCK_C] tile: the fused
    epilogue's math, row blocks pid, pid + num_programs, ...; partials kept in registers."""
    cols = tl.arange(0, BLOCK_C)
    col_ok = cols < N
    if HAS_NW:
        nw = _vector(nw_g, cols, N, stride_nwn, 0.0)
    acc_nw = tl.zeros((BLOCK_C,), dtype=tl.float32)
    acc_nb = tl.zeros((BLOCK_C,), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_C,), dtype=tl.float32)
    rb = pid
    while rb * BLOCK_R < M:
        rows = rb * BLOCK_R + tl.arange(0, BLOCK_R)
        m = (rows < M)[:, None] & col_ok[None, :]
        offs = (g * M + rows)[:, None] * N + cols[None, :]  # [BLOCK_R, BLOCK_C]
        zhat, rstd = _normalize(tl.load(z_ptr + offs, mask=m, other=0.0), m, N, eps, NORM)
        dy_ptrs = dy_g + rows[:, None] * stride_dym + cols[None, :] * stride_dyn
        dy = tl.load(dy_ptrs, mask=m, other=0.0).to(tl.float32)
        acc_nw += tl.sum(dy * zhat, axis=0)
        acc_nb += tl.sum(dy, axis=0)
        h = dy * nw[None, :] if HAS_NW else dy
        hz = tl.sum(h * zhat, axis=1) / N
        if NORM == 0:
            dz = rstd[:, None] * (h - (tl.sum(h, axis=1) / N)[:, None] - zhat * hz[:, None])
        else:
            dz = rstd[:, None] * (h - zhat * hz[:, None])
        dz = tl.where(m, dz, 0.0)
        tl.store(dz_ptr + offs, dz, mask=m)
        acc_b += tl.sum(dz, axis=0)
        rb += tl.num_programs(0)
    if HAS_NW:
        tl.store(part + cols, acc_nw, mask=col_ok)
    if HAS_NB:
        tl.store(part + N + cols, acc_nb, mask=col_ok)
    if HAS_BIAS:
        tl.store(part + 2 * N + cols, acc_b, mask=col_ok)


@triton.jit
def _norm_rows_bwd_kernel(
    dz_ptr,  # [G, M, N] fp32, contiguous
    part_ptr,  # [G, num_programs(0), 3, N] fp32 column partials (zeroed if N_CHUNKS > 1)
    z_ptr,  # [G, M, N] fp32, contiguous
    dy_ptr,  # [G, M, N] strides (stride_dyg, stride_dym, stride_dyn)
    nw_ptr,  # [G, N] strides (stride_nwg, stride_nwn)
    M,
    N,
    eps,
    stride_dyg,
    stride_dym,
    stride_dyn,
    stride_nwg,
    stride_nwn,
    NORM: tl.constexpr,
    HAS_NW: tl.constexpr,
    HAS_NB: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    N_CHUNKS: tl.constexpr,  # cdiv(N, BLOCK_C)
):
    pid = tl.program_id(0).to(tl.int64)  # this program's first row block of group g
    g = tl.program_id(1).to(tl.int64)
    part = part_ptr + (g * tl.num_programs(0) + pid) * 3 * N  # the program's own partials
    cols = tl.arange(0, BLOCK_C)
    nw_g = nw_ptr + g * stride_nwg
    if N_CHUNKS == 1:  # the rows fit one tile: z and dy read once, partials in registers
        _norm_rows_bwd_tile(
            dz_ptr, part, z_ptr, dy_ptr + g * stride_dyg, nw_g, g, pid, M, N, eps,
            stride_dym, stride_dyn, stride_nwn, NORM, HAS_NW, HAS_NB, HAS_BIAS, BLOCK_R, BLOCK_C,
        )  # fmt: skip
    else:
        rb = pid
        while rb * BLOCK_R < M:
            rows = rb * BLOCK_R + tl.arange(0, BLOCK_R)
            row_ok = rows < M
            base = (g * M + rows)[:, None] * N  # [BLOCK_R, 1]
            dy_rows = dy_ptr + g * stride_dyg + rows[:, None] * stride_dym
            mean, rstd = _row_stats(z_ptr + base, row_ok, N, eps, NORM, BLOCK_C, N_CHUNKS)
            # sums of h = dy * nw and of h * zhat over the row
            sh = tl.zeros_like(mean)
            shz = tl.zeros_like(mean)
            for c in range(N_CHUNKS):
                offs_c = c * BLOCK_C + cols
                m = row_ok[:, None] & (offs_c < N)[None, :]
                zhat = _zhat_chunk(z_ptr + base + offs_c[None, :], m, mean, rstd)
                h = tl.load(dy_rows + offs_c[None, :] * stride_dyn, mask=m, other=0.0).to(
                    tl.float32
                )
                if HAS_NW:
                    h = h * _vector(nw_g, offs_c, N, stride_nwn, 0.0)[None, :]
                sh += tl.sum(h, axis=1)
                shz += tl.sum(h * zhat, axis=1)
            hz = shz / N
            mh = sh / N
            for c in range(N_CHUNKS):
                offs_c = c * BLOCK_C + cols
                c_ok = offs_c < N
                m = row_ok[:, None] & c_ok[None, :]
                zhat = _zhat_chunk(z_ptr + base + offs_c[None, :], m, mean, rstd)
                dy = tl.load(dy_rows + offs_c[None, :] * stride_dyn, mask=m, other=0.0).to(
                    tl.float32
                )
                h = dy
                if HAS_NW:
                    h = h * _vector(nw_g, offs_c, N, stride_nwn, 0.0)[None, :]
                if NORM == 0:
                    dz = rstd[:, None] * (h - mh[:, None] - zhat * hz[:, None])
                else:
                    dz = rstd[:, None] * (h - zhat * hz[:, None])
                dz = tl.where(m, dz, 0.0)
                tl.store(dz_ptr + base + offs_c[None, :], dz, mask=m)
                # column partials: read-modify-write of rows only this program owns
                if HAS_NW:
                    p = part + offs_c
                    tl.store(
                        p, tl.load(p, mask=c_ok, other=0.0) + tl.sum(dy * zhat, axis=0), mask=c_ok
                    )
                if HAS_NB:
                    p = part + N + offs_c
                    tl.store(p, tl.load(p, mask=c_ok, other=0.0) + tl.sum(dy, axis=0), mask=c_ok)
                if HAS_BIAS:
                    p = part + 2 * N + offs_c
                    tl.store(p, tl.load(p, mask=c_ok, other=0.0) + tl.sum(dz, axis=0), mask=c_ok)
            rb += tl.num_programs(0)


# ------------------------------------------------------------------------------------
# Launch helpers


def _interpreter() -> bool:
    """The INTERPRETER constexpr: the interpreter's workarounds (bf16 / fp8 dots in fp32,
    bf16 rounding emulated) under TRITON_INTERPRET=1, unless a test turns them off."""
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    return interpreted and UPCAST_DOTS_UNDER_INTERPRETER


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)  # triton.cdiv is a JIT-aware wrapper: microseconds a call


def _next_pow2(v: int) -> int:
    return 1 << max(0, v - 1).bit_length()


def _block(v: int, cap: int | None = None) -> int:
    """Power-of-two tile >= 16 (tl.dot's minimum) covering v, at most cap."""
    b = max(16, _next_pow2(v))
    return b if cap is None else max(16, min(b, cap))


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter runs programs one after another


# Tiles for sm_90: fp8 / bf16 dots run on wgmma (BLOCK_M >= 64 a warpgroup; small M falls
# back to mma.sync tiles of 16), BLOCK_K 128 for fp8 (wgmma's fp8 K step is 32) and 64 for
# bf16; fp32 dots (ieee) are FMA loops holding both operand tiles in registers, so their
# tiles are smaller. The fused-norm epilogues hold the whole row (BLOCK_N up to
# FUSED_MAX_N = 256): BLOCK_M 64 with 8 warps keeps the fp32 row tile at 64 registers a
# thread (a few such tiles live in the backward epilogue). Pipeline stages fill
# SMEM_BUDGET with the tiles as loaded (an fp32 x under the bf16 recipe is staged in fp32).
# `make triton-check` (tools/check_triton_sources.py) compiles every launch of the
# benchmarks and GPU tests for sm_90a and prints registers, spills and shared memory.


def _gemm_config(
    M: int, N: int, K: int, kind: str, a: torch.Tensor, b: torch.Tensor, epilogue: int
) -> dict:
    fused = epilogue != STORE
    if kind == "fp32":
        block_n = _block(N) if fused else _block(N, 64)
        block_k = 16
        block_m = _block(M, 64 if block_n <= 64 else 32)
    else:
        block_n = _block(N) if fused else _block(N, 128)
        block_k = max(32, _block(K, 128)) if kind == "fp8" else _block(K, 64)
        wide = block_n > 128 or epilogue == NORM_BWD
        block_m = _block(M, 64 if wide else 128)
    tile = block_m * block_n
    big = tile >= (64 * 64 if kind == "fp32" else 128 * 128)
    num_warps = 8 if big or (fused and tile >= 64 * 128) else 4
    stage = block_k * (block_m * a.element_size() + block_n * b.element_size())
    num_stages = 2 if kind == "fp32" else max(2, min(4, SMEM_BUDGET // stage))
    return dict(
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        K_TILES=_cdiv(K, block_k),
        PROMOTE_K=min(FP8_PROMOTE_K, block_k),
        num_warps=num_warps,
        num_stages=num_stages,
    )


def _vec_strides(t: torch.Tensor | None) -> tuple[int, int]:
    """(group, entry) strides of a [G, N] vector (or of [G, R, 1] / [G, 1, 1] scales: the
    entry stride of a per-tensor scale is 0)."""
    if t is None:
        return 0, 0
    return t.stride(0), (t.stride(1) if t.shape[1] > 1 else 0)


def _mat_strides(t: torch.Tensor | None) -> tuple[int, int, int]:
    return tuple(t.stride()) if t is not None else (0, 0, 0)


def _gemm(
    out: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    kind: str,
    sa: torch.Tensor | None = None,
    sb: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    nw: torch.Tensor | None = None,
    nb: torch.Tensor | None = None,
    dy: torch.Tensor | None = None,
    epilogue: int = STORE,
    norm: str = "none",
    eps: float = 0.0,
    split: int = 1,
    config: dict | None = None,
) -> torch.Tensor | None:
    """out[g] = epilogue(a[g] . b[g]^T): a [G, M, K], b [G, N, K] (any strides; fp8 codes
    when kind == "fp8", with scales sa [G, M, 1] / [G, 1, 1] and sb [G, N, 1] / [G, 1, 1]),
    bias / nw / nb [G, N], residual / dy [G, M, N]. NORM_BWD returns the column partials
    [G, T, 3, N] (T = M tiles) of (dnorm_weight, dnorm_bias, dbias). With split > 1, out
    is [G * split, M, N] fp32: the partial products of split ranges of K (STORE only)."""
    G, M, K = a.shape
    N = b.shape[1]
    config = dict(config or _gemm_config(M, N, K, kind, a, b, epilogue))
    config["K_TILES"] = _cdiv(config["K_TILES"], split)
    grid = (_cdiv(M, config["BLOCK_M"]), _cdiv(N, config["BLOCK_N"]), G * split)
    part = None
    if epilogue == NORM_BWD:
        part = torch.empty((G, grid[0], 3, N), device=a.device, dtype=torch.float32)
    _gemm_kernel[grid](
        out,
        a,
        b,
        sa if sa is not None else a,
        sb if sb is not None else a,
        bias if bias is not None else a,
        residual if residual is not None else a,
        nw if nw is not None else a,
        nb if nb is not None else a,
        dy if dy is not None else a,
        part if part is not None else out,
        M,
        N,
        K,
        split,
        float(eps),
        *out.stride(),
        *a.stride(),
        *b.stride(),
        *_vec_strides(sa),
        *_vec_strides(sb),
        *_vec_strides(bias),
        *_mat_strides(residual),
        *_vec_strides(nw),
        *_vec_strides(nb),
        *_mat_strides(dy),
        PRECISION=_PRECISION[kind],
        EPILOGUE=epilogue,
        NORM=_NORM[norm] if norm != "none" else 0,
        HAS_SCALES=sa is not None,
        HAS_BIAS=bias is not None,
        HAS_RES=residual is not None,
        HAS_NW=nw is not None,
        HAS_NB=nb is not None,
        INTERPRETER=_interpreter(),
        **config,
    )
    return part


def _rows_config(M: int, N: int) -> dict:
    block_c = _block(N, ROWS_MAX_C)
    block_r = max(1, min(_next_pow2(M), 4096 // block_c))
    return dict(
        BLOCK_R=block_r,
        BLOCK_C=block_c,
        N_CHUNKS=_cdiv(N, block_c),
        num_warps=8 if block_r * block_c >= 4096 else 4,
    )


def _norm_rows_fwd(y, z, nw, nb, norm, eps) -> None:
    """y = the norm of the rows of z [G, M, N] (fp32, contiguous), chunk by chunk of N."""
    G, M, N = z.shape
    config = _rows_config(M, N)
    grid = (_cdiv(M, config["BLOCK_R"]), G)
    _norm_rows_fwd_kernel[grid](
        y,
        z,
        nw if nw is not None else z,
        nb if nb is not None else z,
        M,
        N,
        float(eps),
        *_vec_strides(nw),
        *_vec_strides(nb),
        NORM=_NORM[norm],
        HAS_NW=nw is not None,
        HAS_NB=nb is not None,
        INTERPRETER=_interpreter(),
        **config,
    )


def _norm_rows_bwd(dz, z, dy, nw, has_nb, has_bias, norm, eps) -> torch.Tensor:
    """dz of the norm of the rows of z [G, M, N] (fp32, contiguous) given dy; returns the
    column partials [G, P, 3, N] of (dnorm_weight, dnorm_bias, dbias). Persistent: P
    programs a group (about 8 an SM in all), each owning one row of partials."""
    G, M, N = z.shape
    config = _rows_config(M, N)
    row_blocks = _cdiv(M, config["BLOCK_R"])
    programs = max(1, min(row_blocks, _cdiv(8 * _sm_count(z.device), G)))  # latency-bound
    alloc = torch.zeros if config["N_CHUNKS"] > 1 else torch.empty  # chunks add up in place
    part = alloc((G, programs, 3, N), device=z.device, dtype=torch.float32)
    _norm_rows_bwd_kernel[(programs, G)](
        dz,
        part,
        z,
        dy,
        nw if nw is not None else z,
        M,
        N,
        float(eps),
        *dy.stride(),
        *_vec_strides(nw),
        NORM=_NORM[norm],
        HAS_NW=nw is not None,
        HAS_NB=has_nb,
        HAS_BIAS=has_bias,
        **config,
    )
    return part


# ------------------------------------------------------------------------------------
# FP8 operands


def _quantizer():
    """quantize_fp8(x, granularity, fp8_dtype, transposed) -> (q contiguous, scale): the
    Triton kernel where it exists, else the reference (bit for bit the same codes)."""
    try:
        from recperf.kernels.fp8 import quantize_fp8
    except ImportError:
        from recperf.ops.fp8_backends import quantize_fp8_torch as quantize_fp8
    return quantize_fp8


def _quantize(t: torch.Tensor, granularity: str, fp8_dtype: torch.dtype):
    """The codes and scales of t [G, R, C] (any strides), per row or per matrix (group):
    q [G, R, C] contiguous along C (K-major for the fp8 dot), scale [G, R, 1] / [G, 1, 1]."""
    G, R, C = t.shape
    if granularity == "tensor" and G > 1:  # per-group scales: the reference arithmetic
        q, scale = quantize_fp8_batched(t, "tensor", fp8_dtype)
        return (q if q.stride(-1) == 1 else q.contiguous()), scale
    # One launch: a 2-D view (its strides are the quantizer's; a transposed view is read
    # in place), or for several groups the rows of all groups at once (a copy if t is a
    # transposed view; row scales never cross a group).
    flat = t[0] if G == 1 else t.reshape(G * R, C)
    q, scale = _quantizer()(flat, granularity, fp8_dtype, False)
    q = q.view(G, R, C)
    return q, (scale.view(G, R, 1) if granularity == "row" else scale.reshape(1, 1, 1))


def _operands(a: torch.Tensor, b: torch.Tensor, precision: GemmPrecision):
    """(a, b, sa, sb) of a GEMM a . b^T under a precision: fp8 codes and their scales, or
    the tensors themselves (cast inside the kernel)."""
    if precision.kind != "fp8":
        return a, b, None, None
    qa, sa = _quantize(a, precision.granularity, precision.a_dtype)
    qb, sb = _quantize(b, precision.granularity, precision.b_dtype)
    return qa, qb, sa, sb


def _split_k(G: int, M: int, N: int, config: dict, device: torch.device) -> int:
    """How many programs share each output tile's K: enough to fill the device when the
    output has few tiles and K is long (the weight gradient: [N, K] output, M contracted);
    each split keeps at least 4 BLOCK_K steps."""
    if SPLIT_K_OVERRIDE is not None:
        return max(1, SPLIT_K_OVERRIDE)  # may leave empty splits: tests cover them
    tiles = G * _cdiv(M, config["BLOCK_M"]) * _cdiv(N, config["BLOCK_N"])
    target = _sm_count(device)
    if 2 * tiles >= target or config["K_TILES"] < 8:
        return 1
    return max(1, min(_cdiv(target, tiles), config["K_TILES"] // 4))


def _matmul(a, b, precision: GemmPrecision, out_dtype: torch.dtype) -> torch.Tensor:
    """a [G, M, K] . b [G, N, K]^T -> [G, M, N] in out_dtype, under a GEMM precision.
    Split-K when the output has too few tiles: fp32 partials summed in a fixed order
    (deterministic), cast once."""
    qa, qb, sa, sb = _operands(a, b, precision)
    G, M, K = a.shape
    N = b.shape[1]
    config = _gemm_config(M, N, K, precision.kind, qa, qb, STORE)
    split = _split_k(G, M, N, config, a.device)
    if split == 1:
        out = torch.empty((G, M, N), device=a.device, dtype=out_dtype)
        _gemm(out, qa, qb, precision.kind, sa, sb, config=config)
        return out
    part = torch.empty((G * split, M, N), device=a.device, dtype=torch.float32)
    _gemm(part, qa, qb, precision.kind, sa, sb, split=split, config=config)
    return part.view(G, split, M, N).sum(1).to(out_dtype)


# ------------------------------------------------------------------------------------
# Launchers


def fp8_gemm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """(a * a_scale) (b * b_scale)^T + bias: a [M, K] and b [N, K] fp8 (e4m3fn / e5m2),
    a_scale fp32 [] or [M, 1], b_scale fp32 [] or [N, 1], bias [N] or None -> [M, N] in
    out_dtype, as fp8_gemm_ref: fp8 dots accumulated in fp32, then acc * (sa * sb) + bias
    in fp32, cast once. Operands not contiguous along K are copied (K-major for wgmma)."""
    M, N = a.shape[0], b.shape[0]
    a = a if a.stride(1) == 1 else a.contiguous()
    b = b if b.stride(1) == 1 else b.contiguous()
    sa = a_scale.float().reshape(1, -1, 1) if a_scale.dim() else a_scale.float().reshape(1, 1, 1)
    sb = b_scale.float().reshape(1, -1, 1) if b_scale.dim() else b_scale.float().reshape(1, 1, 1)
    out = torch.empty((1, M, N), device=a.device, dtype=out_dtype)
    _gemm(
        out,
        a.unsqueeze(0),
        b.unsqueeze(0),
        "fp8",
        sa,
        sb,
        bias=bias.unsqueeze(0) if bias is not None else None,
    )
    return out[0]


def _unsqueeze(*tensors):
    return tuple(t.unsqueeze(0) if t is not None else None for t in tensors)


def _fwd(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
    """The forward on [G, ...] tensors."""
    G, M, N = x.shape[0], x.shape[1], weight.shape[1]
    precision = recipe(recipe_name).forward
    qa, qb, sa, sb = _operands(x, weight, precision)
    kind = precision.kind
    y = torch.empty((G, M, N), device=x.device, dtype=x.dtype)
    if norm == "none":
        _gemm(y, qa, qb, kind, sa, sb, bias, residual)
    elif N <= FUSED_MAX_N:
        _gemm(y, qa, qb, kind, sa, sb, bias, residual, norm_weight, norm_bias,
              epilogue=NORM_FWD, norm=norm, eps=eps)  # fmt: skip
    else:
        z = torch.empty((G, M, N), device=x.device, dtype=torch.float32)
        _gemm(z, qa, qb, kind, sa, sb, bias, residual)
        _norm_rows_fwd(y, z, norm_weight, norm_bias, norm, eps)
    return y


def _bwd(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
    """The backward on [G, ...] tensors."""
    rec = recipe(recipe_name)
    G, M, N = x.shape[0], x.shape[1], weight.shape[1]
    empty = x.new_empty(0)
    d_nw = d_nb = db = empty
    if norm == "none":
        dz = grad  # no norm: dz = dy, no recompute (the GEMMs read it in its dtype)
        if bias is not None:
            db = grad.float().sum(1).to(bias.dtype)
    else:
        qa, qb, sa, sb = _operands(x, weight, rec.forward)
        dz = torch.empty((G, M, N), device=x.device, dtype=torch.float32)
        if N <= FUSED_MAX_N:
            part = _gemm(dz, qa, qb, rec.forward.kind, sa, sb, bias, residual, norm_weight,
                         norm_bias, grad, epilogue=NORM_BWD, norm=norm, eps=eps)  # fmt: skip
        else:
            z = torch.empty((G, M, N), device=x.device, dtype=torch.float32)
            _gemm(z, qa, qb, rec.forward.kind, sa, sb, bias, residual)
            part = _norm_rows_bwd(
                dz, z, grad, norm_weight, norm_bias is not None, bias is not None, norm, eps
            )
        sums = part.sum(1)  # [G, 3, N]: a deterministic reduction of the partials
        if norm_weight is not None:
            d_nw = sums[:, 0].to(norm_weight.dtype)
        if norm_bias is not None:
            d_nb = sums[:, 1].to(norm_bias.dtype)
        if bias is not None:
            db = sums[:, 2].to(bias.dtype)
    dres = dz.to(residual.dtype, copy=True) if residual is not None else empty
    dx = _matmul(dz, weight.transpose(1, 2), rec.dgrad, x.dtype)
    dw = _matmul(dz.transpose(1, 2), x.transpose(1, 2), rec.wgrad, weight.dtype)
    return dx, dw, db, dres, d_nw, d_nb


def linear_norm_fwd(
    x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
) -> torch.Tensor:
    """Norm(x . weight^T + bias + residual) -> [M, N] in x's dtype: x [M, K], weight
    [N, K], bias / norm_weight / norm_bias [N], residual [M, N] (any may be None).

    One GEMM kernel in the recipe's forward precision with the bias, residual and norm in
    its fp32 epilogue (N <= FUSED_MAX_N); larger N: the GEMM stores z and a row kernel
    normalizes it. FP8 recipes quantize x and weight first (recperf.kernels.fp8).
    """
    args = _unsqueeze(x, weight, bias, residual, norm_weight, norm_bias)
    return _fwd(*args, norm, eps, recipe_name)[0]


def linear_norm_bwd(
    grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
) -> tuple[torch.Tensor, ...]:
    """(dx, dweight, dbias, dresidual, dnorm_weight, dnorm_bias) of linear_norm; an absent
    input's gradient is an empty tensor, each gradient has its input's dtype.

    Recomputes z in the forward precision fused with the norm backward (dz fp32 and
    per-tile column partials of the parameter gradients, summed deterministically), then
    dgrad dz . W and wgrad dz^T . x with the same GEMM kernel in the recipe's dgrad and
    wgrad precisions (FP8: dz e5m2, W and x e4m3, scales along the non-contracted dims).
    """
    args = _unsqueeze(grad, x, weight, bias, residual, norm_weight, norm_bias)
    grads = _bwd(*args, norm, eps, recipe_name)
    return tuple(t[0] if t.dim() > 1 else t for t in grads)  # empty: absent input


def grouped_linear_norm_fwd(
    x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
) -> torch.Tensor:
    """linear_norm_fwd of G independent problems in one launch per kernel: x [G, M, K],
    weight [G, N, K], bias / norm params [G, N], residual [G, M, N] -> [G, M, N]."""
    return _fwd(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name)


def grouped_linear_norm_bwd(
    grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
) -> tuple[torch.Tensor, ...]:
    """linear_norm_bwd of G independent problems, G on the grid of every kernel."""
    return _bwd(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name)
