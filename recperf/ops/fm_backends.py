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
            # every shape the ops accept: results too large for one program's registers
            # take the kernels' tiled path (recperf.kernels.fm)
            limits=triton_device_reason,
        )
    )


for _kernel in TORCH_FNS:
    _register(_kernel)
