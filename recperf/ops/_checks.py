"""Argument checks shared by the ops: each error names the argument, what was expected
and what was given, and is raised before any kernel runs."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
KERNEL_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16})
"""What the compiled and Triton kernels take; float64 is served by the torch backend."""


def _dtype_names(dtypes) -> str:
    return ", ".join(str(d).removeprefix("torch.") for d in dtypes)


def check_tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_float(t: torch.Tensor, name: str) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have a floating dtype ({_dtype_names(FLOAT_DTYPES)}), got {t.dtype}"
        )


def check_rank(t: torch.Tensor, name: str, rank: int, layout: str) -> None:
    if t.dim() != rank:
        raise ValueError(
            f"{name} must have rank {rank} ({layout}), got rank {t.dim()} (shape {tuple(t.shape)})"
        )


def check_size(t: torch.Tensor, name: str, dim: int, expected: int, meaning: str) -> None:
    if t.shape[dim] != expected:
        raise ValueError(
            f"{name}.shape[{dim}] must be {expected} ({meaning}), got "
            f"{t.shape[dim]} (shape {tuple(t.shape)})"
        )


def check_nonempty(t: torch.Tensor, name: str, dims: dict[int, str]) -> None:
    for dim, meaning in dims.items():
        if t.shape[dim] < 1:
            raise ValueError(
                f"{name}.shape[{dim}] ({meaning}) must be at least 1, got "
                f"{t.shape[dim]} (shape {tuple(t.shape)})"
            )


def check_same_device(t: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    if t.device != ref.device:
        raise ValueError(f"{name} must be on {ref_name}'s device ({ref.device}), got {t.device}")


def check_param_dtype(t: torch.Tensor, name: str, x: torch.Tensor) -> None:
    """Parameters may be x's dtype or float32 (fp32 master weights with low-precision x)."""
    if t.dtype not in (x.dtype, torch.float32):
        raise TypeError(f"{name} must have x's dtype ({x.dtype}) or float32, got {t.dtype}")


def check_grad(grad: torch.Tensor, x: torch.Tensor, shape: tuple[int, ...]) -> None:
    check_tensor(grad, "grad")
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(
            f"grad must have the output's shape {tuple(shape)}, got {tuple(grad.shape)}"
        )
    check_same_device(grad, "grad", x, "x")
    if grad.dtype != x.dtype:
        raise TypeError(f"grad must have x's dtype ({x.dtype}), got {grad.dtype}")
