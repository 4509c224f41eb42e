"""FP8 ops: ``torch.ops.recperf.quantize_fp8``, ``quantize_fp8_transposed`` and
``fp8_gemm`` (schemas in csrc/ops/fp8.cpp): their checks, device kernels (dispatch),
fake kernels, autograd and typed wrappers. The numerics are those of fp8_ref.py.

Neither quantization is differentiable (no gradient flows back through the codes; a
straight-through estimator is the caller's choice); fp8_gemm is differentiable in its
bias only.
"""

from __future__ import annotations

import torch

from recperf import dispatch
from recperf.ops import fp8_backends  # noqa: F401  registers the FP8 kernel backends
from recperf.ops._checks import (
    KERNEL_DTYPES,
    check_float,
    check_nonempty,
    check_rank,
    check_same_device,
    check_size,
    check_tensor,
    checked_types,
)
from recperf.ops.fp8_ref import FP8_DTYPES, GRANULARITIES

_ops = torch.ops.recperf


def check_granularity(granularity: object) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def fp8_dtype_or_default(fp8_dtype: torch.dtype | None) -> torch.dtype:
    fp8_dtype = torch.float8_e4m3fn if fp8_dtype is None else fp8_dtype
    if fp8_dtype not in FP8_DTYPES:
        raise TypeError(f"fp8_dtype must be one of {FP8_DTYPES}, got {fp8_dtype}")
    return fp8_dtype


def _check_quantize(x, granularity, fp8_dtype) -> torch.dtype:
    check_tensor(x, "x")
    check_float(x, "x")
    if x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"x must be float32, bfloat16 or float16, got {x.dtype}")
    check_rank(x, "x", 2, "[M, K]")
    check_nonempty(x, "x", {1: "K"})
    check_granularity(granularity)
    return fp8_dtype_or_default(fp8_dtype)


def _quantize(x, granularity, fp8_dtype, backend, transposed):
    fp8_dtype = _check_quantize(x, granularity, fp8_dtype)
    inputs = dispatch.Inputs(
        device=x.device,
        dtype=x.dtype,
        shape={"M": x.shape[0], "K": x.shape[1]},
        options={"granularity": granularity, "transposed": transposed},
    )
    impl = dispatch.choose("quantize_fp8", inputs, backend)
    return impl.fn(x, granularity, fp8_dtype, transposed)


def _quantize_fake(x, granularity, fp8_dtype, backend, transposed):
    fp8_dtype = _check_quantize(x, granularity, fp8_dtype)
    dispatch.forced_backend(backend)
    rows, cols = (x.shape[1], x.shape[0]) if transposed else (x.shape[0], x.shape[1])
    scale_shape = (rows, 1) if granularity == "row" else ()
    return x.new_empty((rows, cols), dtype=fp8_dtype), x.new_empty(scale_shape, dtype=torch.float32)


def _no_grad_setup(ctx, inputs, output):
    ctx.mark_non_differentiable(*output)


def _quantize_backward(ctx, grad_q, grad_scale):
    return None, None, None, None


for _name, _transposed in (("quantize_fp8", False), ("quantize_fp8_transposed", True)):

    def _kernel(x, granularity="row", fp8_dtype=None, backend="auto", _t=_transposed):
        return _quantize(x, granularity, fp8_dtype, backend, _t)

    def _fake(x, granularity="row", fp8_dtype=None, backend="auto", _t=_transposed):
        return _quantize_fake(x, granularity, fp8_dtype, backend, _t)

    torch.library.register_kernel(f"recperf::{_name}", ("cpu", "cuda"), _kernel)
    torch.library.register_fake(f"recperf::{_name}", _fake)
    torch.library.register_autograd(
        f"recperf::{_name}", _quantize_backward, setup_context=_no_grad_setup
    )


# ------------------------------------------------------------------------------------
# fp8_gemm


def _check_scale(scale, name: str, rows: int, operand: torch.Tensor, operand_name: str) -> None:
    check_tensor(scale, name)
    if scale.dtype != torch.float32:
        raise TypeError(f"{name} must be float32, got {scale.dtype}")
    if scale.dim() != 0 and tuple(scale.shape) != (rows, 1):
        raise ValueError(
            f"{name} must have shape () (per tensor) or ({rows}, 1) (per row of "
            f"{operand_name}), got {tuple(scale.shape)}"
        )
    check_same_device(scale, name, operand, operand_name)


def _check_gemm(a, a_scale, b, b_scale, bias, out_dtype) -> torch.dtype:
    for t, name in ((a, "a"), (b, "b")):
        check_tensor(t, name)
        if t.dtype not in FP8_DTYPES:
            raise TypeError(f"{name} must be float8_e4m3fn or float8_e5m2, got {t.dtype}")
        check_rank(t, name, 2, "[M, K]" if name == "a" else "[N, K]")
    check_size(b, "b", 1, a.shape[1], "a's K")
    check_nonempty(a, "a", {1: "K"})
    check_nonempty(b, "b", {0: "N"})
    check_same_device(b, "b", a, "a")
    _check_scale(a_scale, "a_scale", a.shape[0], a, "a")
    _check_scale(b_scale, "b_scale", b.shape[0], b, "b")
    if bias is not None:
        check_tensor(bias, "bias")
        check_float(bias, "bias")
        check_rank(bias, "bias", 1, "[N]")
        check_size(bias, "bias", 0, b.shape[0], "b's N")
        check_same_device(bias, "bias", a, "a")
    out_dtype = torch.bfloat16 if out_dtype is None else out_dtype
    if out_dtype not in KERNEL_DTYPES:
        raise TypeError(f"out_dtype must be float32, bfloat16 or float16, got {out_dtype}")
    return out_dtype


@torch.library.register_kernel("recperf::fp8_gemm", ("cpu", "cuda"))
def _fp8_gemm_kernel(a, a_scale, b, b_scale, bias=None, out_dtype=None, backend="auto"):
    out_dtype = _check_gemm(a, a_scale, b, b_scale, bias, out_dtype)
    inputs = dispatch.Inputs(
        device=a.device,
        dtype=a.dtype,
        shape={"M": a.shape[0], "N": b.shape[0], "K": a.shape[1]},
        options={
            "row_scales": (a_scale.dim() == 2, b_scale.dim() == 2),
            "out_dtype": out_dtype,
            "b_dtype": b.dtype,
            "bias_dtype": None if bias is None else bias.dtype,
        },
    )
    impl = dispatch.choose("fp8_gemm", inputs, backend)
    return impl.fn(a, a_scale, b, b_scale, bias, out_dtype)


@torch.library.register_fake("recperf::fp8_gemm")
def _fp8_gemm_fake(a, a_scale, b, b_scale, bias=None, out_dtype=None, backend="auto"):
    out_dtype = _check_gemm(a, a_scale, b, b_scale, bias, out_dtype)
    dispatch.forced_backend(backend)
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


def _gemm_setup(ctx, inputs, output):
    bias = inputs[4]
    ctx.bias_dtype = None if bias is None else bias.dtype


def _gemm_backward(ctx, grad):
    grad_bias = None if ctx.bias_dtype is None else grad.float().sum(0).to(ctx.bias_dtype)
    return None, None, None, None, grad_bias, None, None


torch.library.register_autograd("recperf::fp8_gemm", _gemm_backward, setup_context=_gemm_setup)


# ------------------------------------------------------------------------------------
# Typed wrappers


@checked_types
def quantize_fp8(
    x: torch.Tensor,
    granularity: str = "row",
    fp8_dtype: torch.dtype | None = torch.float8_e4m3fn,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (q [M, K] fp8, scale fp32 [M, 1] ("row") or [] ("tensor")), x ~= q *
    scale; the amax maps to the dtype's max; saturating, round-to-nearest-even; an
    all-zero row gets scale 1. Non-finite input makes its row's scale non-finite."""
    return _ops.quantize_fp8(x, granularity, fp8_dtype, backend)


@checked_types
def quantize_fp8_transposed(
    x: torch.Tensor,
    granularity: str = "row",
    fp8_dtype: torch.dtype | None = torch.float8_e4m3fn,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantization of x^T in one pass (cast-transpose): q [K, M] contiguous, scale
    [K, 1] (one per column of x) or []. The operands a GEMM contracting over M needs."""
    return _ops.quantize_fp8_transposed(x, granularity, fp8_dtype, backend)


@checked_types
def fp8_gemm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = torch.bfloat16,
    backend: str = "auto",
) -> torch.Tensor:
    """(a * a_scale) (b * b_scale)^T + bias: a [M, K] and b [N, K] (nn.Linear's layout)
    fp8, scales per tensor [] or per row [M, 1] / [N, 1]; as torch._scaled_mm."""
    return _ops.fp8_gemm(a, a_scale, b, b_scale, bias, out_dtype, backend)
