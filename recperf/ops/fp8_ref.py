"""Reference FP8 quantization and scaled GEMM: the exact numerics every backend matches.

Quantization of a row (or of the whole tensor), in float32:

    amax  = max |x|                       (NaN if the row holds a NaN)
    inv   = fp8_max / amax,  scale = amax / fp8_max      (both 1 when amax == 0)
    q     = fp8(clamp(x * inv, -fp8_max, fp8_max))       round to nearest even

so x ~= q * scale, the row's amax maps to the dtype's largest value, and nothing
overflows. Both divisions and the product are IEEE float32 operations and the final
rounding is exact round-to-nearest-even, which is why every backend agrees with this one
bit for bit. Non-finite input stays visible and local: an inf in a row makes that row's
scale inf (its finite entries quantize to 0, the inf to NaN), a NaN makes the row's scale
and codes NaN; other rows are untouched.
"""

from __future__ import annotations

import torch

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
GRANULARITIES = ("row", "tensor")


def fp8_max(fp8_dtype: torch.dtype) -> float:
    return float(torch.finfo(fp8_dtype).max)


def quantize_fp8_batched(
    t: torch.Tensor, granularity: str, fp8_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantization over the last two dims of t [.., R, C]: scales [.., R, 1] per
    row, or [.., 1, 1] per matrix (per group, for the grouped ops)."""
    tf = t.float()
    top = fp8_max(fp8_dtype)
    dims = (-1,) if granularity == "row" else (-2, -1)
    if tf.numel():
        amax = tf.abs().amax(dim=dims, keepdim=True)
    else:
        kept = (*tf.shape[:-1], 1) if granularity == "row" else (*tf.shape[:-2], 1, 1)
        amax = tf.new_zeros(kept)
    # Tensor-by-tensor divisions: torch evaluates `scalar / tensor` as a reciprocal times
    # the scalar (and may divide by a scalar the same way), which rounds differently.
    top_t = torch.full_like(amax, top)
    zero = amax == 0
    inv = torch.where(zero, torch.ones_like(amax), top_t / amax)
    scale = torch.where(zero, torch.ones_like(amax), amax / top_t)
    return (tf * inv).clamp(-top, top).to(fp8_dtype), scale


def quantize_fp8_ref(
    x: torch.Tensor, granularity: str = "row", fp8_dtype: torch.dtype = torch.float8_e4m3fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (q [M, K] fp8, scale fp32 [M, 1] for "row", [] for "tensor")."""
    q, scale = quantize_fp8_batched(x, granularity, fp8_dtype)
    return q, scale if granularity == "row" else scale.reshape(())


def quantize_fp8_transposed_ref(
    x: torch.Tensor, granularity: str = "row", fp8_dtype: torch.dtype = torch.float8_e4m3fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantization of x^T, contiguous: q [K, M] with one scale per column of x.
    (A GEMM that contracts over M, such as a weight gradient, needs this layout.)"""
    return quantize_fp8_ref(x.t(), granularity, fp8_dtype)


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale


def fp8_gemm_ref(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """(a * a_scale) (b * b_scale)^T + bias, as torch._scaled_mm computes it: the fp8
    products accumulated in float32 (exact: fp8 values are exact in float32), then scaled
    by a_scale [M, 1] or [] times b_scale^T [1, N] or [], plus bias [N], cast once."""
    acc = a.float() @ b.float().t()
    sa = a_scale.float().reshape(-1, 1) if a_scale.dim() else a_scale.float()
    sb = b_scale.float().reshape(1, -1) if b_scale.dim() else b_scale.float()
    out = acc * (sa * sb)
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)
