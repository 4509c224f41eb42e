"""The backends of the permute_chunks kernel: torch (reference), cpp, cuda and triton.
Every backend moves bytes, so every dtype is supported alike."""

from __future__ import annotations

import functools

import torch

from recperf import dispatch
from recperf.ops.a2a_ref import permute_chunks_ref
from recperf.ops.backends import (
    compiled_kernel,
    cuda_kernel_missing,
    triton_device_reason,
    triton_launcher,
    triton_missing,
)

_DTYPE_NAMES = (
    *("float64", "float32", "float16", "bfloat16"),
    *("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"),
    *("complex32", "complex64", "complex128"),
    *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"),
)
BYTE_DTYPES = frozenset(getattr(torch, n) for n in _DTYPE_NAMES if hasattr(torch, n))
"""Every dtype with whole-byte elements that this torch has (the op copies bytes)."""

ANY_DEVICE = frozenset({"cpu", "cuda"})
KERNEL = "permute_chunks"

dispatch.register(
    dispatch.Implementation(
        kernel=KERNEL,
        backend="torch",
        fn=permute_chunks_ref,
        devices=ANY_DEVICE,
        dtypes=BYTE_DTYPES,
    )
)
dispatch.register(
    dispatch.Implementation(
        kernel=KERNEL,
        backend="cpp",
        fn=compiled_kernel(KERNEL),
        devices=frozenset({"cpu"}),
        dtypes=BYTE_DTYPES,
    )
)
dispatch.register(
    dispatch.Implementation(
        kernel=KERNEL,
        backend="cuda",
        fn=compiled_kernel(KERNEL),
        devices=frozenset({"cuda"}),
        dtypes=BYTE_DTYPES,
        available=functools.partial(cuda_kernel_missing, KERNEL),
    )
)
dispatch.register(
    dispatch.Implementation(
        kernel=KERNEL,
        backend="triton",
        fn=triton_launcher("a2a", KERNEL),
        devices=ANY_DEVICE,
        dtypes=BYTE_DTYPES,
        available=triton_missing,
        limits=triton_device_reason,
    )
)
