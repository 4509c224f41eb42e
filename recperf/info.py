"""What this installation of recperf was built with, and which backends can run here."""

from __future__ import annotations

import importlib.util
import platform

import torch

from recperf import dispatch
from recperf.ops.backends import triton_interpreted
from recperf.validated import validated_backends


def build_info() -> dict:
    import recperf

    kernels_ns = torch.ops.recperf_kernels
    triton_version = None
    if importlib.util.find_spec("triton") is not None:
        import triton

        triton_version = triton.__version__
    return {
        "recperf": recperf.__version__,
        "library": recperf._C.__file__,
        "cpu_kernels": f"built (micro-kernel ISA on this machine: {kernels_ns.cpu_isa()})",
        "cuda_kernels": "built" if kernels_ns.built_with_cuda() else "not built",
        "triton": triton_version or "not installed",
        "triton_interpreter": triton_interpreted(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


def backend_matrix() -> dict[str, dict[str, str]]:
    """Per kernel and backend: 'ok', or why it cannot run on this machine (checked on a
    small float32 input on each device present), and whether it is a GPU default."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    matrix = {}
    for kernel in dispatch.kernels():
        row = {}
        for backend, impl in sorted(dispatch.implementations(kernel).items()):
            states = []
            for device in devices:
                inputs = dispatch.Inputs(device, torch.float32, {})
                reasons = impl.not_supported_reasons(inputs)
                states.append(f"{device.type}: " + ("ok" if not reasons else "; ".join(reasons)))
            if backend in validated_backends(kernel):
                states.append("GPU default (validated)")
            row[backend] = " | ".join(states)
        matrix[kernel] = row
    return matrix
