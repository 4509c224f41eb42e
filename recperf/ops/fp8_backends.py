"""The backends of the FP8 kernels.

quantize_fp8: torch (reference), cpp (C++ CPU), cuda, triton; all bit-exact.
fp8_gemm: torch (reference, any device), triton, scaled_mm (torch._scaled_mm: cuBLASLt).
"""

from __future__ import annotations

import functools

import torch

from recperf import dispatch
from recperf.ops._checks import KERNEL_DTYPES
from recperf.ops.backends import (
    compiled_kernel,
    cuda_kernel_missing,
    triton_device_reason,
    triton_launcher,
    triton_missing,
)
from recperf.ops.fp8_ref import FP8_DTYPES, fp8_gemm_ref, quantize_fp8_ref

ANY_DEVICE = frozenset({"cpu", "cuda"})


def quantize_fp8_torch(x, granularity, fp8_dtype, transposed):
    q, scale = quantize_fp8_ref(x.t() if transposed else x, granularity, fp8_dtype)
    return q.contiguous(), scale


def _triton_limits(inputs: dispatch.Inputs) -> str | None:
    return triton_device_reason(inputs)


# ------------------------------------------------------------------------------------
# torch._scaled_mm: what cuBLASLt's FP8 GEMM accepts (torch 2.6 - 2.13).


def _scaled_mm_missing() -> str | None:
    if not hasattr(torch, "_scaled_mm"):
        return "this torch has no torch._scaled_mm"
    return None


def _scaled_mm_limits(inputs: dispatch.Inputs) -> str | None:
    if inputs.device.type == "cuda" and torch.cuda.get_device_capability(inputs.device) < (8, 9):
        return "FP8 GEMMs need compute capability 8.9 or newer"
    s, o = inputs.shape, inputs.options
    if s["K"] % 16 or s["N"] % 16:
        return f"K ({s['K']}) and N ({s['N']}) must be multiples of 16"
    a_row, b_row = o["row_scales"]
    if a_row != b_row:
        return "scales must both be per row or both per tensor"
    if inputs.dtype == torch.float8_e5m2 and o["b_dtype"] == torch.float8_e5m2:
        return "e5m2 x e5m2 is not supported"
    if a_row and (
        o["out_dtype"] != torch.bfloat16
        or inputs.dtype != torch.float8_e4m3fn
        or o["b_dtype"] != torch.float8_e4m3fn
    ):
        return "row-wise scales need e4m3 operands and a bfloat16 output"
    if o["bias_dtype"] is not None and o["bias_dtype"] != o["out_dtype"]:
        return "the bias must have the output's dtype"
    return None


def fp8_gemm_scaled_mm(a, a_scale, b, b_scale, bias, out_dtype):
    scale_b = b_scale.reshape(1, -1) if b_scale.dim() else b_scale
    return torch._scaled_mm(a, b.t(), a_scale, scale_b, bias=bias, out_dtype=out_dtype)


# ------------------------------------------------------------------------------------

dispatch.register(
    dispatch.Implementation(
        kernel="quantize_fp8",
        backend="torch",
        fn=quantize_fp8_torch,
        devices=ANY_DEVICE,
        dtypes=KERNEL_DTYPES,
    )
)
for _backend, _devices in (("cpp", {"cpu"}), ("cuda", {"cuda"})):
    dispatch.register(
        dispatch.Implementation(
            kernel="quantize_fp8",
            backend=_backend,
            fn=compiled_kernel("quantize_fp8"),
            devices=frozenset(_devices),
            dtypes=KERNEL_DTYPES,
            available=(
                functools.partial(cuda_kernel_missing, "quantize_fp8")
                if _backend == "cuda"
                else lambda: None
            ),
        )
    )
dispatch.register(
    dispatch.Implementation(
        kernel="quantize_fp8",
        backend="triton",
        fn=triton_launcher("fp8", "quantize_fp8"),
        devices=ANY_DEVICE,
        dtypes=KERNEL_DTYPES,
        available=triton_missing,
        limits=_triton_limits,
    )
)

dispatch.register(
    dispatch.Implementation(
        kernel="fp8_gemm",
        backend="torch",
        fn=fp8_gemm_ref,
        devices=ANY_DEVICE,
        dtypes=frozenset(FP8_DTYPES),
    )
)
dispatch.register(
    dispatch.Implementation(
        kernel="fp8_gemm",
        backend="triton",
        fn=triton_launcher("linear_norm", "fp8_gemm"),
        devices=ANY_DEVICE,
        dtypes=frozenset(FP8_DTYPES),
        available=triton_missing,
        limits=_triton_limits,
    )
)
dispatch.register(
    dispatch.Implementation(
        kernel="fp8_gemm",
        backend="scaled_mm",
        fn=fp8_gemm_scaled_mm,
        devices=frozenset({"cuda"}),
        dtypes=frozenset(FP8_DTYPES),
        available=_scaled_mm_missing,
        limits=_scaled_mm_limits,
    )
)
