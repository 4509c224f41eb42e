"""The backends of the linear_norm kernels (linear_norm_fwd / _bwd and their grouped
forms): torch (the reference of every recipe, any device), cpp and cuda (compiled
quantize and norm kernels around a library GEMM: recperf.ops.linear_norm_composite),
triton (fused GEMM + norm epilogue), and the optional third-party adapters
(recperf.ops.thirdparty)."""

from __future__ import annotations

from recperf import dispatch
from recperf.ops import linear_norm_composite as composite
from recperf.ops._checks import FLOAT_DTYPES, KERNEL_DTYPES
from recperf.ops.backends import (
    has_compiled_kernel,
    triton_device_reason,
    triton_launcher,
    triton_missing,
)
from recperf.ops.linear_norm_ref import (
    linear_norm_backward_ref,
    linear_norm_preact_ref,
    linear_norm_ref,
)

KERNELS = (
    "linear_norm_fwd",
    "linear_norm_bwd",
    "grouped_linear_norm_fwd",
    "grouped_linear_norm_bwd",
)
# The training forward that also returns its GEMM's product, and the backward that starts
# from it instead of recomputing it (recperf.ops.linear_norm): only the backends whose
# forward materializes that product anyway. The others' forward gets it from the
# reference GEMM, and their backward recomputes it.
PREACT_KERNELS = (
    "linear_norm_fwd_preact",
    "linear_norm_bwd_preact",
    "grouped_linear_norm_fwd_preact",
    "grouped_linear_norm_bwd_preact",
)

TORCH_FNS = {
    "linear_norm_fwd": linear_norm_ref,
    "linear_norm_bwd": linear_norm_backward_ref,
    "linear_norm_fwd_preact": linear_norm_preact_ref,
    "linear_norm_bwd_preact": linear_norm_backward_ref,  # takes preact last
}

# The Triton kernels keep one output row block of N in registers for the fused norm.
TRITON_MAX_N = 4096


# The compiled kernels each device's composite calls (the CPU's fp32 / bf16 composite is
# itself compiled: csrc/ops/linear_norm_composite.cpp).
_COMPILED_OPS = {
    "CPU": ("add_norm", "add_norm_backward", "quantize_fp8", "linear_gemm",
            "linear_norm_composite_forward", "linear_norm_composite_backward"),
    "CUDA": ("add_norm", "add_norm_backward", "quantize_fp8"),
}  # fmt: skip


def _compiled_missing(device_key: str) -> str | None:
    for op in _COMPILED_OPS[device_key]:
        if not has_compiled_kernel(op, device_key):
            return f"recperf was built without the {device_key} kernel {op}"
    return None


def _compiled_limits(inputs: dispatch.Inputs) -> str | None:
    if inputs.options.get("weight_dtype") not in KERNEL_DTYPES:
        return f"weight dtype {inputs.options.get('weight_dtype')} is not a kernel dtype"
    return None


def _triton_limits(inputs: dispatch.Inputs) -> str | None:
    reason = triton_device_reason(inputs)
    if reason:
        return reason
    if inputs.options.get("weight_dtype") not in KERNEL_DTYPES:
        return f"weight dtype {inputs.options.get('weight_dtype')} is not a kernel dtype"
    if inputs.shape["N"] > TRITON_MAX_N:
        return f"N={inputs.shape['N']} exceeds the Triton kernel's limit of {TRITON_MAX_N}"
    return None


for _kernel in (*KERNELS, *PREACT_KERNELS):
    _plain = _kernel.removeprefix("grouped_")  # the reference and composite take leading dims
    for _backend, _device, _key in (("cpp", "cpu", "CPU"), ("cuda", "cuda", "CUDA")):
        dispatch.register(
            dispatch.Implementation(
                kernel=_kernel,
                backend=_backend,
                fn=getattr(composite, _plain),
                devices=frozenset({_device}),
                dtypes=KERNEL_DTYPES,
                available=lambda key=_key: _compiled_missing(key),
                limits=_compiled_limits,
            )
        )
    dispatch.register(
        dispatch.Implementation(
            kernel=_kernel,
            backend="torch",
            fn=TORCH_FNS[_plain],
            devices=frozenset({"cpu", "cuda"}),
            dtypes=frozenset(FLOAT_DTYPES),
        )
    )
    if _kernel in PREACT_KERNELS:
        continue
    dispatch.register(
        dispatch.Implementation(
            kernel=_kernel,
            backend="triton",
            fn=triton_launcher("linear_norm", _kernel),
            devices=frozenset({"cpu", "cuda"}),
            dtypes=KERNEL_DTYPES,
            available=triton_missing,
            limits=_triton_limits,
        )
    )
