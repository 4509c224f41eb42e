"""FM interaction ops: ``torch.ops.recperf.fm_pairwise``, ``fm_projected`` and
``fm_projected_norm`` (schemas in csrc/ops/fm.cpp).

Here: their argument checks, their device kernels (which validate, then ask the
dispatcher for a backend; on CPU tensors a compiled fast path runs first, see
csrc/ops/fm_fast_path.cpp), their fake kernels for ``torch.compile``, and the typed
wrappers. Their autograd (whose backward is the ``*_backward`` recperf op) is C++, in
csrc/ops/fm_autograd.cpp.
"""

from __future__ import annotations

import math

import torch

from recperf import dispatch
from recperf.ops import fm_backends  # noqa: F401  registers the FM kernel backends
from recperf.ops._checks import (
    check_float,
    check_grad,
    check_nonempty,
    check_param_dtype,
    check_rank,
    check_same_device,
    check_size,
    check_tensor,
    checked_types,
)

_ops = torch.ops.recperf


# ------------------------------------------------------------------------------------
# Checks (run by the device kernels and the fake kernels alike).


def _check_x(x: torch.Tensor) -> None:
    check_tensor(x, "x")
    check_float(x, "x")
    check_rank(x, "x", 3, "[B, n, d]")
    check_nonempty(x, "x", {1: "features n", 2: "embedding dim d"})


def _check_proj(x: torch.Tensor, proj: torch.Tensor) -> None:
    _check_x(x)
    check_tensor(proj, "proj")
    check_float(proj, "proj")
    check_rank(proj, "proj", 2, "[n, k]")
    check_size(proj, "proj", 0, x.shape[1], "x's feature count n")
    check_nonempty(proj, "proj", {1: "projection rank k"})
    check_same_device(proj, "proj", x, "x")
    check_param_dtype(proj, "proj", x)


def _check_norm(x, proj, weight, bias, eps) -> None:
    _check_proj(x, proj)
    features = x.shape[1] * proj.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        check_tensor(t, name)
        check_float(t, name)
        check_rank(t, name, 1, "[n * k]")
        check_size(t, name, 0, features, "n * k normalized features")
        check_same_device(t, name, x, "x")
        check_param_dtype(t, name, x)
    if not (isinstance(eps, float | int) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def pair_count(n: int, include_self: bool) -> int:
    return n * (n + 1) // 2 if include_self else n * (n - 1) // 2


def _inputs(x: torch.Tensor, proj: torch.Tensor | None = None) -> dispatch.Inputs:
    shape = {"B": x.shape[0], "n": x.shape[1], "d": x.shape[2]}
    if proj is not None:
        shape["k"] = proj.shape[1]
    return dispatch.Inputs(device=x.device, dtype=x.dtype, shape=shape)


def _run(kernel: str, x: torch.Tensor, proj: torch.Tensor | None, backend: str, *args):
    # An empty batch needs no kernel: the reference handles it without a launch.
    requested = "torch" if x.shape[0] == 0 else backend
    impl = dispatch.choose(kernel, _inputs(x, proj), requested)
    return impl.fn(*args)


# ------------------------------------------------------------------------------------
# fm_pairwise


@dispatch.device_kernel("fm_pairwise", fast_cpu_path=True)
def _fm_pairwise_kernel(x, include_self=False, backend="auto"):
    _check_x(x)
    return _run("fm_pairwise_fwd", x, None, backend, x, include_self)


@torch.library.register_fake("recperf::fm_pairwise")
def _fm_pairwise_fake(x, include_self=False, backend="auto"):
    _check_x(x)
    dispatch.forced_backend(backend)
    return x.new_empty((x.shape[0], pair_count(x.shape[1], include_self)))


@dispatch.device_kernel("fm_pairwise_backward", fast_cpu_path=True)
def _fm_pairwise_backward_kernel(grad, x, include_self=False, backend="auto"):
    _check_x(x)
    check_grad(grad, x, (x.shape[0], pair_count(x.shape[1], include_self)))
    return _run("fm_pairwise_bwd", x, None, backend, grad, x, include_self)


@torch.library.register_fake("recperf::fm_pairwise_backward")
def _fm_pairwise_backward_fake(grad, x, include_self=False, backend="auto"):
    _check_x(x)
    check_grad(grad, x, (x.shape[0], pair_count(x.shape[1], include_self)))
    return torch.empty_like(x)


# ------------------------------------------------------------------------------------
# fm_projected


@dispatch.device_kernel("fm_projected", fast_cpu_path=True)
def _fm_projected_kernel(x, proj, backend="auto"):
    _check_proj(x, proj)
    return _run("fm_projected_fwd", x, proj, backend, x, proj)


@torch.library.register_fake("recperf::fm_projected")
def _fm_projected_fake(x, proj, backend="auto"):
    _check_proj(x, proj)
    dispatch.forced_backend(backend)
    return x.new_empty((x.shape[0], x.shape[1], proj.shape[1]))


@dispatch.device_kernel("fm_projected_backward", fast_cpu_path=True)
def _fm_projected_backward_kernel(grad, x, proj, backend="auto"):
    _check_proj(x, proj)
    check_grad(grad, x, (x.shape[0], x.shape[1], proj.shape[1]))
    return _run("fm_projected_bwd", x, proj, backend, grad, x, proj)


@torch.library.register_fake("recperf::fm_projected_backward")
def _fm_projected_backward_fake(grad, x, proj, backend="auto"):
    _check_proj(x, proj)
    check_grad(grad, x, (x.shape[0], x.shape[1], proj.shape[1]))
    return torch.empty_like(x), torch.empty_like(proj)


# ------------------------------------------------------------------------------------
# fm_projected_norm


@dispatch.device_kernel("fm_projected_norm", fast_cpu_path=True)
def _fm_projected_norm_kernel(x, proj, weight=None, bias=None, eps=1e-5, backend="auto"):
    _check_norm(x, proj, weight, bias, eps)
    return _run("fm_projected_norm_fwd", x, proj, backend, x, proj, weight, bias, eps)


@torch.library.register_fake("recperf::fm_projected_norm")
def _fm_projected_norm_fake(x, proj, weight=None, bias=None, eps=1e-5, backend="auto"):
    _check_norm(x, proj, weight, bias, eps)
    dispatch.forced_backend(backend)
    return x.new_empty((x.shape[0], x.shape[1] * proj.shape[1]))


@dispatch.device_kernel("fm_projected_norm_backward", fast_cpu_path=True)
def _fm_projected_norm_backward_kernel(grad, x, proj, weight, bias, eps=1e-5, backend="auto"):
    _check_norm(x, proj, weight, bias, eps)
    check_grad(grad, x, (x.shape[0], x.shape[1] * proj.shape[1]))
    return _run("fm_projected_norm_bwd", x, proj, backend, grad, x, proj, weight, bias, eps)


@torch.library.register_fake("recperf::fm_projected_norm_backward")
def _fm_projected_norm_backward_fake(grad, x, proj, weight, bias, eps=1e-5, backend="auto"):
    _check_norm(x, proj, weight, bias, eps)
    check_grad(grad, x, (x.shape[0], x.shape[1] * proj.shape[1]))
    grad_w = torch.empty_like(weight) if weight is not None else x.new_empty(0)
    grad_b = torch.empty_like(bias) if bias is not None else x.new_empty(0)
    return torch.empty_like(x), torch.empty_like(proj), grad_w, grad_b


# ------------------------------------------------------------------------------------
# Typed wrappers


@checked_types
def fm_pairwise(x: torch.Tensor, include_self: bool = False, backend: str = "auto") -> torch.Tensor:
    """DLRM-style pairwise dots: x [B, n, d] -> [B, n(n-1)/2] (or n(n+1)/2 with
    ``include_self``), pair p = (i, j) in ``torch.triu_indices`` order."""
    return _ops.fm_pairwise(x, include_self, backend)


@checked_types
def fm_projected(x: torch.Tensor, proj: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Wukong's optimized FM: x [B, n, d], proj [n, k] -> x . (x^T . proj) [B, n, k],
    never forming x . x^T."""
    return _ops.fm_projected(x, proj, backend)


@checked_types
def fm_projected_norm(
    x: torch.Tensor,
    proj: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    backend: str = "auto",
) -> torch.Tensor:
    """layer_norm(flatten(fm_projected(x, proj))) over n*k features: [B, n*k]."""
    return _ops.fm_projected_norm(x, proj, weight, bias, eps, backend)
