"""The ``cpp`` (CPU) and ``cuda`` (GPU) backends of linear_norm: compiled kernels around a
GEMM, unfused across the GEMM boundary but fused on each side of it.

On the CPU the fp32 and bf16 recipes are one compiled composite
(recperf_kernels.linear_norm_composite_forward / _backward,
csrc/ops/linear_norm_composite.cpp, which the C++ fast path calls too): a GEMM by row
blocks, bf16 x bf16 -> fp32 on the CPU's bf16 instructions for bf16, with the bias +
residual + norm epilogue run on each row block as it is written. The rest is here:

    quantize (recperf_kernels.quantize_fp8, one pass; cast-transposed for the backward)
    -> GEMM (CUDA: torch._scaled_mm for FP8 where cuBLASLt takes the shapes, a bf16 GEMM
       with fp32 output for bf16; CPU: recperf_kernels.linear_gemm for bf16 and fp32, an
       fp32 GEMM of the exact FP8 values for FP8)
    -> bias + residual + norm in one pass (recperf_kernels.add_norm, fp32)

The numbers are the reference recipe's (recperf.ops.linear_norm_ref) up to the GEMM's
accumulation order, except where _scaled_mm's row-wise form rounds z to bf16 before the
norm (cuBLASLt gives row-wise FP8 GEMMs only a bf16 output).
"""

from __future__ import annotations

import torch

from recperf.ops.fp8_ref import quantize_fp8_batched
from recperf.ops.recipes import GemmPrecision, recipe

_k = torch.ops.recperf_kernels


def _quantize(t: torch.Tensor, granularity: str, fp8_dtype: torch.dtype):
    """Quantize the rows of t [.., R, C] with the compiled kernel; per-group tensor-wise
    scales of a 3-D t come from the reference arithmetic (the same codes)."""
    if t.dim() == 2:
        q, s = _k.quantize_fp8(t, granularity, fp8_dtype, False)
        return q, s.reshape(-1, 1)  # a tensor-wise [] scale as [1, 1], like a row scale
    if granularity == "row":
        q, s = _k.quantize_fp8(t.reshape(-1, t.shape[-1]), "row", fp8_dtype, False)
        return q.view(t.shape), s.view(*t.shape[:-1], 1)
    return quantize_fp8_batched(t, granularity, fp8_dtype)


def _scaled_mm_fits(a, b, precision: GemmPrecision) -> bool:
    if not a.is_cuda or a.dim() != 2 or not hasattr(torch, "_scaled_mm"):
        return False
    if a.shape[1] % 16 or b.shape[0] % 16:
        return False
    if precision.a_dtype == torch.float8_e5m2 and precision.b_dtype == torch.float8_e5m2:
        return False
    return precision.granularity == "tensor" or (
        precision.a_dtype == precision.b_dtype == torch.float8_e4m3fn
    )


# The recipes (and GEMM precisions) the compiled CPU composite runs.
_CPU_COMPOSITE = ("fp32", "bf16")


def gemm(a: torch.Tensor, b: torch.Tensor, precision: GemmPrecision) -> torch.Tensor:
    """a [.., M, K] . b [.., N, K]^T in fp32 under a GEMM precision."""
    if precision.kind in _CPU_COMPOSITE and not a.is_cuda:
        return _k.linear_gemm(a, b, precision.kind)
    bt = b.transpose(-2, -1)
    if precision.kind == "fp32":
        return a.float() @ bt.float()
    if precision.kind == "bf16":
        mm = torch.mm if a.dim() == 2 else torch.bmm
        return mm(a.bfloat16(), bt.bfloat16(), out_dtype=torch.float32)
    qa, sa = _quantize(a, precision.granularity, precision.a_dtype)
    qb, sb = _quantize(b, precision.granularity, precision.b_dtype)
    if _scaled_mm_fits(a, b, precision):
        row = precision.granularity == "row"
        out_dtype = torch.bfloat16 if row else torch.float32
        sa_mm, sb_mm = (sa, sb.reshape(1, -1)) if row else (sa.reshape(()), sb.reshape(()))
        return torch._scaled_mm(qa, qb.t(), sa_mm, sb_mm, out_dtype=out_dtype).float()
    # fp8 values and their products are exact in fp32: a fp32 GEMM emulates the FP8 one.
    return (qa.float() @ qb.float().transpose(-2, -1)) * (sa * sb.transpose(-2, -1))


def linear_norm_fwd_preact(
    x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
):
    """(out, preact): the forward and its GEMM's fp32 product x . W^T, kept for the
    backward (linear_norm_bwd_preact) so that it need not recompute it."""
    if recipe_name in _CPU_COMPOSITE and not x.is_cuda:
        return tuple(
            _k.linear_norm_composite_forward(
                x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
            )
        )
    z = gemm(x, weight, recipe(recipe_name).forward)
    return _k.add_norm(z, bias, residual, norm_weight, norm_bias, norm, eps, x.dtype), z


def linear_norm_fwd(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
    args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name)
    return linear_norm_fwd_preact(*args)[0]


def linear_norm_bwd_preact(
    grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name, preact
):
    """The backward from the forward's GEMM product ``preact`` (x . W^T, fp32)."""
    if recipe_name in _CPU_COMPOSITE and not x.is_cuda:
        return tuple(
            _k.linear_norm_composite_backward(
                grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps,
                recipe_name, preact,
            )
        )  # fmt: skip
    rec = recipe(recipe_name)
    dz, d_nw, d_nb = _k.add_norm_backward(grad, preact, bias, residual, norm_weight, norm, eps)
    dx = gemm(dz, weight.transpose(-2, -1), rec.dgrad)
    dw = gemm(dz.transpose(-2, -1), x.transpose(-2, -1), rec.wgrad)
    empty = x.new_empty(0)
    return (
        dx.to(x.dtype),
        dw.to(weight.dtype),
        dz.sum(-2).to(bias.dtype) if bias is not None else empty,
        dz.to(residual.dtype) if residual is not None else empty,
        d_nw.to(norm_weight.dtype) if norm_weight is not None else empty,
        d_nb.to(norm_bias.dtype) if norm_bias is not None else empty,
    )


def linear_norm_bwd(
    grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
):
    """The backward, recomputing the forward GEMM (the pre-norm activations not kept)."""
    if recipe_name in _CPU_COMPOSITE and not x.is_cuda:
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name)
        return linear_norm_bwd_preact(grad, *args, None)
    preact = gemm(x, weight, recipe(recipe_name).forward)
    args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name)
    return linear_norm_bwd_preact(grad, *args, preact)
