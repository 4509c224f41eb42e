"""Reference implementations of the FM ops, written for clarity.

They compute in float32 for float32/bf16/fp16 inputs and in float64 for float64 inputs
(tests feed them float64 copies), and return the input's dtype. They are the ``torch``
backend, the baselines' meaning, and the tests' ground truth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _acc(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.dtype == torch.float64 else t.float()


def pair_indices(n: int, include_self: bool, device=None) -> torch.Tensor:
    """The (i, j) pairs of fm_pairwise's output, in torch.triu_indices order."""
    return torch.triu_indices(n, n, 0 if include_self else 1, device=device)


def fm_pairwise_ref(x: torch.Tensor, include_self: bool = False) -> torch.Tensor:
    """out[b, p] = <x[b, i], x[b, j]> for the p-th pair (i, j) of pair_indices."""
    xa = _acc(x)
    i, j = pair_indices(x.shape[1], include_self, x.device)
    return torch.bmm(xa, xa.transpose(1, 2))[:, i, j].to(x.dtype)


def fm_pairwise_backward_ref(
    grad: torch.Tensor, x: torch.Tensor, include_self: bool = False
) -> torch.Tensor:
    """grad_x = (S + S^T) x with S[i, j] = grad of pair (i, j); a self pair counts twice."""
    xa = _acc(x)
    B, n, _ = x.shape
    i, j = pair_indices(n, include_self, x.device)
    s = xa.new_zeros(B, n, n)
    s[:, i, j] = _acc(grad)
    s = s + s.transpose(1, 2)
    return torch.bmm(s, xa).to(x.dtype)


def fm_projected_ref(x: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """x . (x^T . proj): [B, n, d], [n, k] -> [B, n, k]."""
    xa, p = _acc(x), proj.to(_acc(x).dtype)
    return torch.bmm(xa, xa.transpose(1, 2) @ p).to(x.dtype)


def _projected_backward(g: torch.Tensor, xa: torch.Tensor, p: torch.Tensor):
    t = xa.transpose(1, 2) @ p  # [B, d, k]
    gt = xa.transpose(1, 2) @ g  # [B, d, k]
    grad_x = g @ t.transpose(1, 2) + p @ gt.transpose(1, 2)
    grad_p = (xa @ gt).sum(0)
    return grad_x, grad_p


def fm_projected_backward_ref(grad: torch.Tensor, x: torch.Tensor, proj: torch.Tensor):
    """(grad_x, grad_proj) of fm_projected."""
    xa = _acc(x)
    grad_x, grad_p = _projected_backward(_acc(grad), xa, proj.to(xa.dtype))
    return grad_x.to(x.dtype), grad_p.to(proj.dtype)


def fm_projected_norm_ref(
    x: torch.Tensor,
    proj: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """layer_norm(flatten(x . (x^T . proj))) over the n*k features."""
    xa = _acc(x)
    f = torch.bmm(xa, xa.transpose(1, 2) @ proj.to(xa.dtype)).flatten(1)
    w = weight.to(xa.dtype) if weight is not None else None
    b = bias.to(xa.dtype) if bias is not None else None
    return F.layer_norm(f, (f.shape[1],), w, b, eps).to(x.dtype)


def fm_projected_norm_backward_ref(
    grad: torch.Tensor,
    x: torch.Tensor,
    proj: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
):
    """(grad_x, grad_proj, grad_weight, grad_bias); the last two are empty when the
    parameter is absent."""
    xa = _acc(x)
    p = proj.to(xa.dtype)
    B, n, _ = x.shape
    k = proj.shape[1]
    f = torch.bmm(xa, xa.transpose(1, 2) @ p).flatten(1)
    mean = f.mean(1, keepdim=True)
    rstd = torch.rsqrt(f.var(1, unbiased=False, keepdim=True) + eps)
    xhat = (f - mean) * rstd
    dy = _acc(grad)
    h = dy * weight.to(xa.dtype) if weight is not None else dy
    df = rstd * (h - h.mean(1, keepdim=True) - xhat * (h * xhat).mean(1, keepdim=True))
    grad_x, grad_p = _projected_backward(df.view(B, n, k), xa, p)
    empty = x.new_empty(0)
    grad_w = (dy * xhat).sum(0).to(weight.dtype) if weight is not None else empty
    grad_b = dy.sum(0).to(bias.dtype) if bias is not None else empty
    return grad_x.to(x.dtype), grad_p.to(proj.dtype), grad_w, grad_b
