"""What each backend needs in order to run at all, shared by every op family."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os

import torch

from recperf import dispatch


def compiled_kernel(kernel: str):
    """The compiled op ``torch.ops.recperf_kernels.<kernel>`` (CPU and CUDA kernels)."""
    return getattr(torch.ops.recperf_kernels, kernel)


_registered: set[tuple[str, str]] = set()


def has_compiled_kernel(kernel: str, dispatch_key: str) -> bool:
    """Whether recperf._C registered recperf_kernels::<kernel> for CPU or CUDA. Asked on
    every op call: a kernel once found is remembered (registrations are never undone)."""
    if (kernel, dispatch_key) in _registered:
        return True
    try:
        found = torch._C._dispatch_has_kernel_for_dispatch_key(
            f"recperf_kernels::{kernel}", dispatch_key
        )
    except RuntimeError:  # no such op in this build
        return False
    if found:
        _registered.add((kernel, dispatch_key))
    return found


def cuda_kernel_missing(kernel: str) -> str | None:
    if not has_compiled_kernel(kernel, "CUDA"):
        return "recperf was built without its CUDA kernels"
    return None


@functools.cache
def triton_missing() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    return None


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_device_reason(inputs: dispatch.Inputs) -> str | None:
    """Triton runs CUDA tensors, and CPU tensors only under its interpreter (tests)."""
    if inputs.device.type == "cpu" and not triton_interpreted():
        return "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)"
    return None


def triton_launcher(module: str, name: str):
    """A launcher of recperf.kernels.<module>, imported on first call: Triton reads
    TRITON_INTERPRET when the kernels are defined, so import as late as possible."""

    def launch(*args):
        return getattr(importlib.import_module(f"recperf.kernels.{module}"), name)(*args)

    launch.__name__ = name
    return launch
