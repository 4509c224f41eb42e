"""The backends of the FM kernels: torch (reference), cpp, triton and cuda."""

from __future__ import annotations

import functools

from recperf import dispatch
from recperf.ops import fm_ref
from recperf.ops._checks import FLOAT_DTYPES, KERNEL_DTYPES
from recperf.ops.backends import (
    compiled_kernel,
    cuda_kernel_missing,
    triton_device_reason,
    triton_launcher,
    triton_missing,
)

TORCH_FNS = {
    "fm_pairwise_fwd": fm_ref.fm_pairwise_ref,
    "fm_pairwise_bwd": fm_ref.fm_pairwise_backward_ref,
    "fm_projected_fwd": fm_ref.fm_projected_ref,
    "fm_projected_bwd": fm_ref.fm_projected_backward_ref,
    "fm_projected_norm_fwd": fm_ref.fm_projected_norm_ref,
    "fm_projected_norm_bwd": fm_ref.fm_projected_norm_backward_ref,
}

# The Triton kernels keep one example's [n, k] result in registers: at n = 256 and k = 32
# only the 16-bit norm backward spills (0.5 KB/thread, sm_90a ptxas); k = 64 spills 3 KB.
TRITON_MAX_N = 256
TRITON_MAX_D = 1024
TRITON_MAX_K = 32


def _triton_limits(inputs: dispatch.Inputs) -> str | None:
    reason = triton_device_reason(inputs)
    if reason:
        return reason
    s = inputs.shape
    for dim, limit in (("n", TRITON_MAX_N), ("d", TRITON_MAX_D), ("k", TRITON_MAX_K)):
        if s.get(dim, 0) > limit:
            return f"{dim}={s[dim]} exceeds the Triton kernel's limit of {limit}"
    return None


def _register(kernel: str) -> None:
    dispatch.register(
        dispatch.Implementation(
            kernel=kernel,
            backend="torch",
            fn=TORCH_FNS[kernel],
            devices=frozenset({"cpu", "cuda"}),
            dtypes=frozenset(FLOAT_DTYPES),
        )
    )
    dispatch.register(
        dispatch.Implementation(
            kernel=kernel,
            backend="cpp",
            fn=compiled_kernel(kernel),
            devices=frozenset({"cpu"}),
            dtypes=KERNEL_DTYPES,
        )
    )
    dispatch.register(
        dispatch.Implementation(
            kernel=kernel,
            backend="cuda",
            fn=compiled_kernel(kernel),
            devices=frozenset({"cuda"}),
            dtypes=KERNEL_DTYPES,
            available=functools.partial(cuda_kernel_missing, kernel),
        )
    )
    dispatch.register(
        dispatch.Implementation(
            kernel=kernel,
            backend="triton",
            fn=triton_launcher("fm", kernel),
            devices=frozenset({"cpu", "cuda"}),
            dtypes=KERNEL_DTYPES,
            available=triton_missing,
            limits=_triton_limits,
        )
    )


for _kernel in TORCH_FNS:
    _register(_kernel)
