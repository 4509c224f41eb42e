"""Argument checks shared by the ops: each error names the argument, what was expected
and what was given, and is raised before any kernel runs."""

from __future__ import annotations

import functools
import inspect
import types
import typing

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


# ------------------------------------------------------------------------------------
# Python types of the public API's arguments: one check, read from the annotations.

_NONE = type(None)


def _accepted(hint: object) -> tuple[type, ...] | None:
    """The classes a value of annotation ``hint`` may be an instance of; None: unchecked.
    ``float`` takes an int too (as Python's own numeric tower does), never a bool."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        parts = [_accepted(h) for h in typing.get_args(hint)]
        return None if None in parts else tuple(c for p in parts for c in p)
    if hint is None or hint is _NONE:
        return (_NONE,)
    if hint is float:
        return (float, int)
    return (hint,) if isinstance(hint, type) else None


def _describe(classes: tuple[type, ...]) -> str:
    names = {torch.Tensor: "a torch.Tensor", torch.dtype: "a torch.dtype", _NONE: "None"}
    shown = [names.get(c, f"{'an' if c.__name__[0] in 'aeiou' else 'a'} {c.__name__}")
             for c in classes if not (c is int and float in classes)]  # fmt: skip
    return " or ".join(shown)


def _refuse(name: str, value: object, classes: tuple[type, ...]) -> None:
    shown = "" if isinstance(value, torch.Tensor) else f" ({value!r:.40})"
    raise TypeError(f"{name} must be {_describe(classes)}, got {type(value).__name__}{shown}")


def checked_types(fn):
    """Decorate a public function (or module ``__init__``) so that an argument whose
    Python type does not fit its annotation (``None`` for a tensor, ``"1e-5"`` for a
    float, ``"yes"`` for a bool) raises ``TypeError`` naming it, before anything runs.
    Unannotated arguments and annotations other than classes and ``X | None`` are left
    to the function. bool is an int to isinstance; to an int or float argument it is a
    mistake."""
    hints = typing.get_type_hints(fn)
    names = list(inspect.signature(fn).parameters)
    # Per parameter: (name, accepted classes or None, whether a bool is accepted).
    rules = [(n, c, c is not None and bool in c) for n, c in
             ((n, _accepted(hints[n]) if n in hints else None) for n in names)]  # fmt: skip
    by_name = {rule[0]: rule for rule in rules}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # The hot path of every public op: one isinstance per argument.
        for (name, classes, takes_bool), value in zip(rules, args, strict=False):
            if classes is not None and (
                not isinstance(value, classes) or (value.__class__ is bool and not takes_bool)
            ):
                _refuse(name, value, classes)
        for key, value in kwargs.items():
            name, classes, takes_bool = by_name.get(key, (key, None, False))
            if classes is not None and (
                not isinstance(value, classes) or (value.__class__ is bool and not takes_bool)
            ):
                _refuse(name, value, classes)
        return fn(*args, **kwargs)

    return wrapper
