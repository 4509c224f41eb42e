"""Reference of linear_norm and grouped_linear_norm, forward and backward, for every
recipe (recperf.ops.recipes): the ``torch`` backend, and what tests compare against.

Shapes carry any leading dims (none for linear_norm, G for grouped_linear_norm):
x [.., M, K], weight [.., N, K], bias [.., N], residual [.., M, N], norm_weight and
norm_bias [.., N]. FP8 scales are per row, or per tensor of each group. Arithmetic is
float32 (float64 when x is float64, for gradcheck and high-precision references).
"""

from __future__ import annotations

import torch

from recperf.ops.fp8_ref import quantize_fp8_batched
from recperf.ops.recipes import GemmPrecision, recipe


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def gemm(a: torch.Tensor, b: torch.Tensor, precision: GemmPrecision, acc: torch.dtype):
    """a [.., M, K] . b [.., N, K]^T under a GEMM precision, accumulated in acc."""
    if precision.kind == "fp32":
        return a.to(acc) @ b.to(acc).transpose(-2, -1)
    if precision.kind == "bf16":  # bf16 operands; their products are exact in fp32
        a16, b16 = a.bfloat16(), b.bfloat16().transpose(-2, -1)
        if a.is_cuda and acc == torch.float32:  # the same numbers from a bf16 GEMM
            mm = torch.mm if a.dim() == 2 else torch.bmm
            return mm(a16, b16, out_dtype=torch.float32)
        return a16.to(acc) @ b16.to(acc)
    qa, sa = quantize_fp8_batched(a, precision.granularity, precision.a_dtype)
    qb, sb = quantize_fp8_batched(b, precision.granularity, precision.b_dtype)
    out = qa.to(acc) @ qb.to(acc).transpose(-2, -1)
    return out * (sa.to(acc) * sb.to(acc).transpose(-2, -1))


def _norm(z, norm, norm_weight, norm_bias, eps):
    """(y, normalized z before the affine) over the last dim, in z's dtype."""
    if norm == "none":
        return z, z
    if norm == "layer":
        mean = z.mean(-1, keepdim=True)
        zhat = (z - mean) * torch.rsqrt(z.var(-1, unbiased=False, keepdim=True) + eps)
    else:  # rms
        zhat = z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + eps)
    y = zhat
    if norm_weight is not None:
        y = y * norm_weight.to(z.dtype).unsqueeze(-2)
    if norm_bias is not None:
        y = y + norm_bias.to(z.dtype).unsqueeze(-2)
    return y, zhat


def _pre_norm(x, weight, bias, residual, rec, preact=None):
    acc = _acc_dtype(x)
    z = gemm(x, weight, rec.forward, acc) if preact is None else preact.to(acc)
    if bias is not None:
        z = z + bias.to(acc).unsqueeze(-2)
    if residual is not None:
        z = z + residual.to(acc)
    return z


def linear_norm_ref(
    x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
    norm="layer", eps=1e-5, recipe_name="bf16",
):  # fmt: skip
    """Norm(x . weight^T + bias + residual) in x's dtype."""
    z = _pre_norm(x, weight, bias, residual, recipe(recipe_name))
    return _norm(z, norm, norm_weight, norm_bias, eps)[0].to(x.dtype)


def preact_ref(x, weight, recipe_name):
    """The forward GEMM's product x . weight^T in the recipe's precision (fp32; float64
    for float64 x): what the backward needs of the forward besides its inputs."""
    return gemm(x, weight, recipe(recipe_name).forward, _acc_dtype(x))


def linear_norm_preact_ref(
    x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name
):  # fmt: skip
    """(out, preact): the forward and the GEMM product its backward can start from."""
    preact = preact_ref(x, weight, recipe_name)
    z = _pre_norm(x, weight, bias, residual, recipe(recipe_name), preact)
    return _norm(z, norm, norm_weight, norm_bias, eps)[0].to(x.dtype), preact


def linear_norm_backward_ref(
    grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name,
    preact=None,
):  # fmt: skip
    """(dx, dweight, dbias, dresidual, dnorm_weight, dnorm_bias); absent inputs get an
    empty tensor. The forward GEMM is recomputed, in the recipe's precision, unless its
    product ``preact`` is given."""
    rec = recipe(recipe_name)
    acc = _acc_dtype(x)
    z = _pre_norm(x, weight, bias, residual, rec, preact)
    dy = grad.to(acc)
    empty = x.new_empty(0)
    d_nw = d_nb = empty
    if norm == "none":
        dz = dy
    else:
        _, zhat = _norm(z, norm, None, None, eps)
        n = z.shape[-1]
        if norm == "layer":
            rstd = torch.rsqrt(z.var(-1, unbiased=False, keepdim=True) + eps)
        else:
            rstd = torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + eps)
        h = dy * norm_weight.to(acc).unsqueeze(-2) if norm_weight is not None else dy
        hz = (h * zhat).sum(-1, keepdim=True) / n
        if norm == "layer":
            dz = rstd * (h - h.sum(-1, keepdim=True) / n - zhat * hz)
        else:
            dz = rstd * (h - zhat * hz)
        if norm_weight is not None:
            d_nw = (dy * zhat).sum(-2).to(norm_weight.dtype)
        if norm_bias is not None:
            d_nb = dy.sum(-2).to(norm_bias.dtype)
    dx = gemm(dz, weight.transpose(-2, -1), rec.dgrad, acc)
    dw = gemm(dz.transpose(-2, -1), x.transpose(-2, -1), rec.wgrad, acc)
    db = dz.sum(-2).to(bias.dtype) if bias is not None else empty
    dres = dz.to(residual.dtype) if residual is not None else empty
    return dx.to(x.dtype), dw.to(weight.dtype), db, dres, d_nw, d_nb
