"""A wrong Python type through the public API is a TypeError naming the argument (issue 20,
class 5): ``None`` for a required tensor, a string for a float, a string or an int for a
bool, on every op and backend, and in the modules' constructors."""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import cpu_backends

import recperf
from recperf.ops._checks import checked_types

BACKENDS = [*cpu_backends(), "auto"]


@functools.cache
def valid_calls():
    """(function, keyword arguments that it accepts) per public op (built once; no test
    changes them)."""
    x3, proj, vec = torch.randn(2, 4, 3), torch.randn(4, 2), torch.randn(8)
    x2, w, n = torch.randn(5, 6), torch.randn(3, 6), torch.randn(3)
    a, a_scale = recperf.quantize_fp8(torch.randn(5, 16))
    b, b_scale = recperf.quantize_fp8(torch.randn(3, 16))
    ln = {"x": x2, "weight": w, "bias": n, "residual": torch.randn(5, 3)}
    ln |= {"norm_weight": n, "norm_bias": n, "norm": "layer", "eps": 1e-5, "recipe": "fp32"}
    g = {k: v.expand(2, *v.shape) if isinstance(v, torch.Tensor) else v for k, v in ln.items()}
    return {
        "fm_pairwise": (recperf.fm_pairwise, {"x": x3, "include_self": True}),
        "fm_projected": (recperf.fm_projected, {"x": x3, "proj": proj}),
        "fm_projected_norm": (
            recperf.fm_projected_norm,
            {"x": x3, "proj": proj, "weight": vec, "bias": vec, "eps": 1e-5},
        ),
        "linear_norm": (recperf.linear_norm, ln),
        "grouped_linear_norm": (recperf.grouped_linear_norm, g),
        "quantize_fp8": (recperf.quantize_fp8, {"x": x2, "granularity": "row"}),
        "quantize_fp8_transposed": (recperf.quantize_fp8_transposed, {"x": x2}),
        "fp8_gemm": (
            recperf.fp8_gemm,
            {"a": a, "a_scale": a_scale, "b": b, "b_scale": b_scale, "bias": n},
        ),
        "permute_chunks": (
            recperf.permute_chunks,
            {"input": x2, "chunk_sizes": torch.tensor([2, 3]), "order": torch.tensor([1, 0])},
        ),
    }


REQUIRED = {
    "fm_pairwise": ["x"],
    "fm_projected": ["x", "proj"],
    "fm_projected_norm": ["x", "proj"],
    "linear_norm": ["x", "weight"],
    "grouped_linear_norm": ["x", "weight"],
    "quantize_fp8": ["x"],
    "quantize_fp8_transposed": ["x"],
    "fp8_gemm": ["a", "a_scale", "b", "b_scale"],
    "permute_chunks": ["input", "chunk_sizes", "order"],
}
# (argument, a value of the wrong Python type, what the error says is expected)
WRONG = {
    "fm_pairwise": [("include_self", "yes", "a bool"), ("include_self", 1, "a bool")],
    "fm_projected_norm": [
        ("eps", "1e-5", "a float"),
        ("eps", True, "a float"),
        ("weight", [1.0], "a torch.Tensor or None"),
    ],
    "linear_norm": [
        ("norm", None, "a str"),
        ("eps", "1e-5", "a float"),
        ("recipe", 3, "a str"),
        ("residual", 0.0, "a torch.Tensor or None"),
    ],
    "grouped_linear_norm": [("norm", None, "a str"), ("eps", None, "a float")],
    "quantize_fp8": [
        ("granularity", None, "a str"),
        ("fp8_dtype", "e4m3", "a torch.dtype or None"),
    ],
    "fp8_gemm": [("out_dtype", "bf16", "a torch.dtype or None")],
}


def cases(table):
    return [
        pytest.param(op, *entry, backend, id=f"{op}-{'-'.join(map(str, entry[:2]))}-{backend}")
        for op, entries in table.items()
        for entry in ((e,) if isinstance(e, str) else e for e in entries)
        for backend in BACKENDS
    ]


@pytest.mark.parametrize("op", list(REQUIRED))
def test_valid_calls_run(op):
    fn, kwargs = valid_calls()[op]
    fn(**kwargs)


@pytest.mark.parametrize(("op", "arg", "backend"), cases(REQUIRED))
def test_none_for_a_required_tensor(op, arg, backend):
    fn, kwargs = valid_calls()[op]
    with pytest.raises(TypeError, match=rf"^{arg} must be a torch.Tensor, got NoneType"):
        fn(**{**kwargs, arg: None}, backend=backend)
    # Positionally too: the names come from the signature, not the keywords.
    args = [kwargs[name] if name != arg else None for name in kwargs]
    with pytest.raises(TypeError, match=rf"^{arg} must be a torch.Tensor"):
        fn(*args, backend=backend)


@pytest.mark.parametrize(("op", "arg", "value", "expected", "backend"), cases(WRONG))
def test_wrong_type_for_an_argument(op, arg, value, expected, backend):
    fn, kwargs = valid_calls()[op]
    with pytest.raises(TypeError, match=rf"^{arg} must be {expected}, got {type(value).__name__}"):
        fn(**{**kwargs, arg: value}, backend=backend)


@pytest.mark.parametrize("op", list(REQUIRED))
def test_backend_must_be_a_string(op):
    fn, kwargs = valid_calls()[op]
    with pytest.raises(TypeError, match=r"^backend must be a str, got NoneType"):
        fn(**kwargs, backend=None)


def test_checked_types_rules():
    @checked_types
    def f(t: torch.Tensor, eps: float = 1.0, flag: bool = False, n: int | None = None, free=0):
        return eps

    assert f(torch.zeros(1), 2) == 2  # an int is a float
    f(torch.zeros(1), 2.0, True, None, free="anything")  # unannotated: unchecked
    for kwargs, message in (
        ({"eps": True}, "eps must be a float, got bool"),
        ({"flag": 0}, "flag must be a bool, got int"),
        ({"n": 2.0}, "n must be an int or None, got float"),
        ({"n": False}, "n must be an int or None, got bool"),
    ):
        with pytest.raises(TypeError, match=message):
            f(torch.zeros(1), **kwargs)
    with pytest.raises(TypeError, match=r"t must be a torch.Tensor, got list \(\[1\]\)"):
        f([1])
