"""Tensors paired row by row must have the same leading shape, not merely as many rows
(issue 20, class 4): linear_norm flattens x [.., K] and residual [.., N] to rows, so a
residual [5, 2, N] for x [2, 5, K] would add its rows to the wrong outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_backends
from numerics import assert_close

import recperf
from recperf.ops.linear_norm_ref import linear_norm_ref

BACKENDS = [*cpu_backends(), "auto"]


def tensors(lead, K=6, N=4):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(*lead, K, generator=g), torch.randn(N, K, generator=g)
    return x, w, torch.randn(*lead, N, generator=g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("x_lead", "res_lead"),
    [((2, 5), (5, 2)), ((2, 5), (10,)), ((10,), (2, 5)), ((3, 1, 4), (3, 4, 1)), ((4,), ())],
)
def test_residual_with_other_leading_dims_is_refused(x_lead, res_lead, backend):
    x, w, _ = tensors(x_lead)
    _, _, residual = tensors(res_lead)
    shapes = rf"got residual shape \({', '.join(map(str, residual.shape))},?\) for x shape"
    with pytest.raises(ValueError, match=rf"residual must have x's leading shape .*{shapes}"):
        recperf.linear_norm(x, w, residual=residual, recipe="fp32", backend=backend)
    with pytest.raises(ValueError, match="residual must have x's leading shape"):
        recperf.nn.LinearNorm(6, 4, recipe="fp32", backend=backend)(x, residual)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lead", [(2, 5), (3, 1, 2), (7,), ()])
def test_residual_with_x_leading_dims_adds_to_its_own_row(lead, backend):
    x, w, residual = tensors(lead)
    out = recperf.linear_norm(x, w, residual=residual, recipe="fp32", backend=backend)
    assert out.shape == (*lead, 4)
    flat = lambda t: t.reshape(-1, t.shape[-1]).double()  # noqa: E731
    ref = linear_norm_ref(
        flat(x), w.double(), None, flat(residual), None, None, "layer", 1e-5, "fp32"
    )
    assert_close(out.reshape(-1, 4), ref, torch.float32, "linear_norm with a residual")


def test_rank_0_x_is_refused():
    with pytest.raises(ValueError, match=r"x must have rank >= 1 \(\[\.\., K\]\), got rank 0"):
        recperf.linear_norm(torch.tensor(1.0), torch.randn(4, 1))
