"""Linear + norm ops: ``torch.ops.recperf.linear_norm`` and ``grouped_linear_norm``
(schemas in csrc/ops/linear_norm.cpp): y = Norm(x . W^T + bias + residual), norm in
{layer, rms, none}, the three GEMMs in the precision of a recipe (recperf.ops.recipes).

Here: their checks, device kernels (dispatch), fake kernels, autograd (the backward op
recomputes the forward GEMM rather than saving the pre-norm activations), and the typed
wrappers, which also flatten leading batch dims of x.
"""

from __future__ import annotations

import math

import torch

from recperf import dispatch
from recperf.ops import linear_norm_backends, thirdparty  # noqa: F401  registers the backends
from recperf.ops._checks import (
    check_float,
    check_nonempty,
    check_rank,
    check_same_device,
    check_tensor,
)
from recperf.ops.recipes import NORMS, recipe

_ops = torch.ops.recperf


def _check_shape(t, name: str, expected: tuple[int, ...], layout: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(expected)}, got {tuple(t.shape)}"
        )


def check_linear_norm(
    x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name, grouped: bool
) -> None:
    g = "G, " if grouped else ""
    lead = 1 if grouped else 0
    check_tensor(x, "x")
    check_float(x, "x")
    check_rank(x, "x", 2 + lead, f"[{g}M, K]")
    check_tensor(weight, "weight")
    check_float(weight, "weight")
    check_rank(weight, "weight", 2 + lead, f"[{g}N, K]")
    check_same_device(weight, "weight", x, "x")
    check_nonempty(x, "x", {lead + 1: "in features K"})
    check_nonempty(weight, "weight", {lead: "out features N"})
    if grouped:
        check_nonempty(x, "x", {0: "groups G"})
        if weight.shape[0] != x.shape[0]:
            raise ValueError(
                f"weight.shape[0] must be x's group count {x.shape[0]}, got {weight.shape[0]}"
            )
    K, N = x.shape[-1], weight.shape[-2]
    if weight.shape[-1] != K:
        raise ValueError(
            f"weight.shape[-1] must be x's in features K = {K}, got {weight.shape[-1]}"
        )
    groups = tuple(x.shape[:lead])
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    recipe(recipe_name)
    if norm == "rms" and norm_bias is not None:
        raise ValueError("norm_bias must be None for norm='rms' (RMSNorm has no bias)")
    if norm == "none" and (norm_weight is not None or norm_bias is not None):
        raise ValueError("norm_weight and norm_bias must be None for norm='none'")
    vectors = (("bias", bias), ("norm_weight", norm_weight), ("norm_bias", norm_bias))
    for name, t in (*vectors, ("residual", residual)):
        if t is None:
            continue
        check_tensor(t, name)
        check_float(t, name)
        check_same_device(t, name, x, "x")
        if name == "residual":
            _check_shape(t, name, (*groups, x.shape[-2], N), f"[{g}M, N]")
        else:
            _check_shape(t, name, (*groups, N), f"[{g}N]")
    if not (isinstance(eps, float | int) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _inputs(x, weight, norm, recipe_name, grouped) -> dispatch.Inputs:
    shape = {"M": x.shape[-2], "K": x.shape[-1], "N": weight.shape[-2]}
    if grouped:
        shape["G"] = x.shape[0]
    return dispatch.Inputs(
        device=x.device,
        dtype=x.dtype,
        shape=shape,
        options={"recipe": recipe_name, "norm": norm, "weight_dtype": weight.dtype},
    )


def _empty_grads(x, weight, bias, residual, norm_weight, norm_bias):
    def like(t):
        return torch.empty_like(t) if t is not None else x.new_empty(0)

    return tuple(like(t) for t in (x, weight, bias, residual, norm_weight, norm_bias))


def _register(op: str, grouped: bool) -> None:
    fwd_kernel, bwd_kernel = f"{op}_fwd", f"{op}_bwd"

    def kernel(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
               norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe)
        check_linear_norm(*args, grouped)
        requested = "torch" if x.shape[-2] == 0 else backend  # no rows: nothing to launch
        impl = dispatch.choose(fwd_kernel, _inputs(x, weight, norm, recipe, grouped), requested)
        return impl.fn(*args)

    def fake(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
             norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        check_linear_norm(
            x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, grouped
        )
        dispatch.forced_backend(backend)
        return x.new_empty((*x.shape[:-1], weight.shape[-2]))

    def backward_kernel(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps,
                        recipe, backend="auto"):  # fmt: skip
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe)
        check_linear_norm(*args, grouped)
        _check_grad(grad, x, weight)
        requested = "torch" if x.shape[-2] == 0 else backend
        impl = dispatch.choose(bwd_kernel, _inputs(x, weight, norm, recipe, grouped), requested)
        return impl.fn(grad, *args)

    def backward_fake(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps,
                      recipe, backend="auto"):  # fmt: skip
        check_linear_norm(
            x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, grouped
        )
        _check_grad(grad, x, weight)
        return _empty_grads(x, weight, bias, residual, norm_weight, norm_bias)

    def setup_context(ctx, inputs, output):
        x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, backend = inputs
        ctx.save_for_backward(x, weight, bias, residual, norm_weight, norm_bias)
        ctx.options = (norm, eps, recipe, backend)

    def autograd_backward(ctx, grad):
        saved = ctx.saved_tensors
        grads = getattr(_ops, f"{op}_backward")(grad, *saved, *ctx.options)
        grads = tuple(g if t is not None else None for g, t in zip(grads, saved, strict=True))
        return (*grads, None, None, None, None)

    torch.library.register_kernel(f"recperf::{op}", ("cpu", "cuda"), kernel)
    torch.library.register_fake(f"recperf::{op}", fake)
    torch.library.register_kernel(f"recperf::{op}_backward", ("cpu", "cuda"), backward_kernel)
    torch.library.register_fake(f"recperf::{op}_backward", backward_fake)
    torch.library.register_autograd(
        f"recperf::{op}", autograd_backward, setup_context=setup_context
    )


def _check_grad(grad, x, weight) -> None:
    check_tensor(grad, "grad")
    expected = (*x.shape[:-1], weight.shape[-2])
    if tuple(grad.shape) != expected:
        raise ValueError(f"grad must have the output's shape {expected}, got {tuple(grad.shape)}")
    check_same_device(grad, "grad", x, "x")
    if grad.dtype != x.dtype:
        raise TypeError(f"grad must have x's dtype ({x.dtype}), got {grad.dtype}")


_register("linear_norm", grouped=False)
_register("grouped_linear_norm", grouped=True)


# ------------------------------------------------------------------------------------
# Typed wrappers


def linear_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    norm_weight: torch.Tensor | None = None,
    norm_bias: torch.Tensor | None = None,
    norm: str = "layer",
    eps: float = 1e-5,
    recipe: str = "bf16",
    backend: str = "auto",
) -> torch.Tensor:
    """Norm(x . weight^T + bias + residual): x [.., K] (leading dims flattened to M),
    weight [N, K], bias / norm_weight / norm_bias [N], residual [.., N] -> [.., N] in x's
    dtype. ``recipe`` fixes the precision of the forward, dgrad and wgrad GEMMs."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    r2 = (
        residual.reshape(-1, residual.shape[-1])
        if residual is not None and residual.dim() != 2
        else residual
    )
    y = _ops.linear_norm(x2, weight, bias, r2, norm_weight, norm_bias, norm, eps, recipe, backend)
    return y.reshape(*lead, y.shape[-1]) if x.dim() != 2 else y


def grouped_linear_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    norm_weight: torch.Tensor | None = None,
    norm_bias: torch.Tensor | None = None,
    norm: str = "layer",
    eps: float = 1e-5,
    recipe: str = "bf16",
    backend: str = "auto",
) -> torch.Tensor:
    """G independent linear_norm problems in one call: x [G, M, K], weight [G, N, K],
    bias / norm params [G, N], residual [G, M, N] -> [G, M, N]."""
    return _ops.grouped_linear_norm(
        x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, backend
    )
