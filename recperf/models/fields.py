"""Checks of config fields, shared by every model config's ``__post_init__``: each raises a
TypeError (wrong type) or ValueError (wrong value) naming the field and the value given."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def integer(value: object, name: str, low: int) -> int:
    """An int >= low (bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def positive_int(value: object, name: str) -> int:
    return integer(value, name, 1)


def non_negative_int(value: object, name: str) -> int:
    return integer(value, name, 0)


def probability(value: object, name: str) -> float:
    """A float in [0, 1) (a dropout rate: 1 would zero everything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def boolean(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def one_of(value: object, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def widths(value: object, name: str) -> tuple[int, ...]:
    """A tuple (or list, as JSON gives it back) of positive ints, possibly empty."""
    if not isinstance(value, tuple | list):
        raise TypeError(f"{name} must be a tuple of ints, got {type(value).__name__} {value!r}")
    for i, w in enumerate(value):
        positive_int(w, f"{name}[{i}]")
    return tuple(value)


def per_layer(
    value: object, name: str, layers: int, check: Callable[[object, str], object]
) -> tuple:
    """One setting for every layer, or a tuple of ``layers`` settings (one per layer; for
    ``widths`` fields a tuple of tuples), each passing ``check``: the per-layer tuple."""
    seq = tuple | list
    if check is widths:
        several = isinstance(value, seq) and bool(value) and all(isinstance(v, seq) for v in value)
    else:
        several = isinstance(value, seq)
    if not several:
        return (check(value, name),) * layers
    if len(value) != layers:
        raise ValueError(f"{name} must give one value per layer ({layers}), got {value!r}")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(value))
