"""Linear + norm ops: ``torch.ops.recperf.linear_norm`` and ``grouped_linear_norm``
(schemas in csrc/ops/linear_norm.cpp): y = Norm(x . W^T + bias + residual), norm in
{layer, rms, none}, the three GEMMs in the precision of a recipe (recperf.ops.recipes).

Here: their checks, device kernels (dispatch; on CPU tensors a compiled fast path runs
first, csrc/ops/linear_norm_fast_path.cpp), fake kernels and the typed wrappers, which
also flatten leading batch dims of x. Their autograd is C++ (csrc/ops/linear_norm_autograd.cpp).

Training: on CPU tensors the autograd runs ``*_forward``, which also returns the forward
GEMM's fp32 product (``preact``, M x N, what plain torch keeps for its layer norm too),
and hands it to ``*_backward``, which then skips recomputing that GEMM. On the GPU the
backward recomputes it (the fused Triton kernels' choice: M x N fp32 less per layer).
Backends without a ``*_preact`` kernel take the product from the reference GEMM in the
forward and recompute it in the backward.
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
    checked_types,
)
from recperf.ops.linear_norm_ref import preact_ref
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

    def choose(kernel, x, weight, norm, recipe, backend):
        requested = "torch" if x.shape[-2] == 0 else backend  # no rows: nothing to launch
        return dispatch.choose(kernel, _inputs(x, weight, norm, recipe, grouped), requested)

    def kernel(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
               norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe)
        check_linear_norm(*args, grouped)
        return choose(fwd_kernel, x, weight, norm, recipe, backend).fn(*args)

    def fake(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
             norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        check_linear_norm(
            x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, grouped
        )
        dispatch.forced_backend(backend)
        return x.new_empty((*x.shape[:-1], weight.shape[-2]))

    def forward_kernel(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
                       norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe)
        check_linear_norm(*args, grouped)
        impl = choose(fwd_kernel, x, weight, norm, recipe, backend)
        keeping = dispatch.implementations(f"{fwd_kernel}_preact").get(impl.backend)
        if keeping is not None:
            return keeping.fn(*args)
        return impl.fn(*args), preact_ref(x, weight, recipe)

    def forward_fake(x, weight, bias=None, residual=None, norm_weight=None, norm_bias=None,
                     norm="layer", eps=1e-5, recipe="bf16", backend="auto"):  # fmt: skip
        out = fake(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, backend)
        return out, out.new_empty(out.shape, dtype=preact_dtype(x))

    def backward_kernel(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps,
                        recipe, backend="auto", preact=None):  # fmt: skip
        args = (x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe)
        check_linear_norm(*args, grouped)
        _check_grad(grad, x, weight)
        impl = choose(bwd_kernel, x, weight, norm, recipe, backend)
        if preact is not None:
            _check_preact(preact, x, weight)
            from_preact = dispatch.implementations(f"{bwd_kernel}_preact").get(impl.backend)
            if from_preact is not None:
                return from_preact.fn(grad, *args, preact)
        return impl.fn(grad, *args)

    def backward_fake(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps,
                      recipe, backend="auto", preact=None):  # fmt: skip
        check_linear_norm(
            x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe, grouped
        )
        _check_grad(grad, x, weight)
        if preact is not None:
            _check_preact(preact, x, weight)
        return _empty_grads(x, weight, bias, residual, norm_weight, norm_bias)

    for name, device_fn, fake_fn in (
        (op, kernel, fake),
        (f"{op}_forward", forward_kernel, forward_fake),
        (f"{op}_backward", backward_kernel, backward_fake),
    ):
        dispatch.device_kernel(name, fast_cpu_path=True)(device_fn)
        torch.library.register_fake(f"recperf::{name}", fake_fn)


def preact_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of the forward GEMM's kept product: the reference's accumulation dtype."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_preact(preact, x, weight) -> None:
    check_tensor(preact, "preact")
    expected = (*x.shape[:-1], weight.shape[-2])
    if tuple(preact.shape) != expected:
        raise ValueError(
            f"preact must have the output's shape {expected}, got {tuple(preact.shape)}"
        )
    check_same_device(preact, "preact", x, "x")
    if preact.dtype != preact_dtype(x):
        raise TypeError(f"preact must be {preact_dtype(x)} for x of {x.dtype}, got {preact.dtype}")


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


@checked_types
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
    if x.dim() == 0:
        raise ValueError("x must have rank >= 1 ([.., K]), got rank 0")
    lead = x.shape[:-1]
    # Rows are paired after flattening: residual's leading dims must be x's, not merely
    # hold as many rows (a [5, 2, N] residual for a [2, 5, K] x would land on wrong rows).
    if residual is not None and (residual.dim() == 0 or residual.shape[:-1] != lead):
        raise ValueError(
            f"residual must have x's leading shape {tuple(lead)} (residual [.., N] for "
            f"x [.., K]), got residual shape {tuple(residual.shape)} for x shape "
            f"{tuple(x.shape)}"
        )
    x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    r2 = (
        residual.reshape(-1, residual.shape[-1])
        if residual is not None and residual.dim() != 2
        else residual
    )
    y = _ops.linear_norm(x2, weight, bias, r2, norm_weight, norm_bias, norm, eps, recipe, backend)
    return y.reshape(*lead, y.shape[-1]) if x.dim() != 2 else y


@checked_types
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
