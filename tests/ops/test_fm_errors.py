"""Bad input to the FM ops: a ValueError/TypeError that names the argument, what was
expected and what was given, raised before any kernel runs (by the public op, by its
fake kernel under torch.compile, and by the compiled kernels called directly)."""

from __future__ import annotations

import pytest
import torch

import recperf

X = torch.randn(2, 5, 8)
PROJ = torch.randn(5, 3)


@pytest.mark.parametrize(
    "call,error,pattern",
    [
        (
            lambda: recperf.fm_pairwise(torch.randn(5, 8)),
            ValueError,
            r"x must have rank 3 \(\[B, n, d\]\), got rank 2",
        ),
        (
            lambda: recperf.fm_projected(X, torch.randn(4, 3)),
            ValueError,
            r"proj.shape\[0\] must be 5 \(x's feature count n\), got 4",
        ),
        (lambda: recperf.fm_projected(X, torch.randn(5)), ValueError, r"proj must have rank 2"),
        (
            lambda: recperf.fm_pairwise(torch.ones(2, 5, 8, dtype=torch.int64)),
            TypeError,
            r"x must have a floating dtype .* got torch.int64",
        ),
        (
            lambda: recperf.fm_projected(X, PROJ.to(torch.int32)),
            TypeError,
            r"proj must have a floating dtype",
        ),
        (
            lambda: recperf.fm_projected(X.bfloat16(), PROJ.half()),
            TypeError,
            r"proj must have x's dtype \(torch.bfloat16\) or float32, got torch.float16",
        ),
        (
            lambda: recperf.fm_projected_norm(X, PROJ, torch.randn(14)),
            ValueError,
            r"weight.shape\[0\] must be 15 \(n \* k normalized features\), got 14",
        ),
        (
            lambda: recperf.fm_projected_norm(X, PROJ, None, torch.randn(3, 5)),
            ValueError,
            r"bias must have rank 1",
        ),
        (
            lambda: recperf.fm_projected_norm(X, PROJ, eps=-1.0),
            ValueError,
            r"eps must be a finite number >= 0, got -1.0",
        ),
        (
            lambda: recperf.fm_projected(X, PROJ.to("meta")),
            ValueError,
            r"proj must be on x's device \(cpu\), got meta",
        ),
        (
            lambda: recperf.fm_pairwise(torch.randn(2, 0, 8)),
            ValueError,
            r"x.shape\[1\] \(features n\) must be at least 1, got 0",
        ),
        (
            lambda: recperf.fm_projected(X, torch.randn(5, 0)),
            ValueError,
            r"proj.shape\[1\] \(projection rank k\) must be at least 1",
        ),
        (
            lambda: recperf.fm_pairwise(X, backend="fastest"),
            ValueError,
            r"backend must be one of .* got 'fastest'",
        ),
        (
            lambda: recperf.fm_pairwise(X, backend="cuda"),
            ValueError,
            r"backend 'cuda' was forced but cannot run these inputs",
        ),
        (
            lambda: torch.ops.recperf.fm_projected_backward(torch.randn(2, 5, 4), X, PROJ),
            ValueError,
            r"grad must have the output's shape \(2, 5, 3\), got \(2, 5, 4\)",
        ),
        (
            lambda: torch.ops.recperf.fm_pairwise_backward(torch.randn(2, 10).double(), X),
            TypeError,
            r"grad must have x's dtype \(torch.float32\), got torch.float64",
        ),
    ],
)
def test_bad_input_is_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_fake_kernel_checks_under_compile():
    torch._dynamo.reset()
    f = torch.compile(lambda x, p: recperf.fm_projected(x, p), fullgraph=True)
    with pytest.raises(Exception, match=r"proj.shape\[0\] must be 5"):
        f(X, torch.randn(4, 3))


@pytest.mark.parametrize(
    "call,error,pattern",
    [
        (
            lambda k: k.fm_projected_fwd(torch.randn(5, 8), PROJ),
            ValueError,
            "x must have rank 3, got rank 2",
        ),
        (
            lambda k: k.fm_projected_fwd(X, torch.randn(4, 3)),
            ValueError,
            r"proj.size\(0\) must be 5, got 4",
        ),
        (
            lambda k: k.fm_pairwise_fwd(X.double(), False),
            TypeError,
            "x must be float32, bfloat16 or float16, got Double",
        ),
        (
            lambda k: k.fm_projected_norm_fwd(X, PROJ, torch.randn(7), None, 1e-5),
            ValueError,
            r"weight.size\(0\) must be 15, got 7",
        ),
        (
            lambda k: k.fm_projected_norm_fwd(X, PROJ, None, None, -1.0),
            ValueError,
            "eps must be finite and >= 0",
        ),
    ],
)
def test_compiled_kernels_check_their_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(torch.ops.recperf_kernels)
