"""Second derivatives: refused where an op is differentiable once, right where it is twice.

The FM and linear_norm ops are differentiable once: their *_backward ops (and linear_norm's
training forward) have no derivative, so a gradient of the gradient that
``torch.autograd.grad(..., create_graph=True)`` returned must raise, on every backend,
instead of returning zeros or a wrong value (issue 20, class 2). The ops whose backward is
made of differentiable ops (permute_chunks, fp8_gemm's bias) pass gradgradcheck or give
the exact second derivative.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import cpu_backends

import recperf

BACKENDS = [*cpu_backends(), "auto"]
UNREGISTERED = "an autograd kernel was not registered"


def leaf(shape, dtype, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(dtype).requires_grad_(True)


def fm_pairwise(dtype, include_self):
    x = leaf((2, 5, 3), dtype, 1)
    return (lambda b: recperf.fm_pairwise(x, include_self, b)), (x,)


def fm_projected(dtype):
    x, proj = leaf((2, 5, 3), dtype, 2), leaf((5, 2), dtype, 3, 0.5)
    return (lambda b: recperf.fm_projected(x, proj, b)), (x, proj)


def fm_projected_norm(dtype, affine):
    x, proj = leaf((3, 4, 6), dtype, 4), leaf((4, 3), dtype, 5, 0.5)
    w, b = (leaf((12,), dtype, 6), leaf((12,), dtype, 7)) if affine else (None, None)
    inputs = (x, proj, w, b) if affine else (x, proj)
    return (lambda be: recperf.fm_projected_norm(x, proj, w, b, 1e-5, be)), inputs


def linear_norm(dtype, norm, grouped):
    lead = (2,) if grouped else ()
    x, w = leaf((*lead, 5, 7), dtype, 8), leaf((*lead, 4, 7), dtype, 9, 0.4)
    bias, res = leaf((*lead, 4), dtype, 10), leaf((*lead, 5, 4), dtype, 11)
    nw = None if norm == "none" else leaf((*lead, 4), dtype, 12)
    nb = leaf((*lead, 4), dtype, 13) if norm == "layer" else None
    op = recperf.grouped_linear_norm if grouped else recperf.linear_norm
    inputs = tuple(t for t in (x, w, bias, res, nw, nb) if t is not None)

    def fn(backend):
        return op(x, w, bias, res, nw, nb, norm, 1e-5, "fp32", backend)

    return fn, inputs


CASES = {
    "fm_pairwise": lambda dt: fm_pairwise(dt, False),
    "fm_pairwise-self": lambda dt: fm_pairwise(dt, True),
    "fm_projected": fm_projected,
    "fm_projected_norm": lambda dt: fm_projected_norm(dt, True),
    "fm_projected_norm-plain": lambda dt: fm_projected_norm(dt, False),
    **{
        f"{'grouped_' if g else ''}linear_norm-{norm}": (
            lambda dt, norm=norm, g=g: linear_norm(dt, norm, g)
        )
        for g in (False, True)
        for norm in ("layer", "rms", "none")
    },
}


def dtype_for(backend):
    # float64 is the torch backend's alone; the kernels take float32.
    return torch.float64 if backend == "torch" else torch.float32


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_second_derivative_is_refused(case, backend):
    fn, inputs = CASES[case](dtype_for(backend))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grads = torch.autograd.grad(fn(backend).pow(2).sum(), inputs, create_graph=True)
    assert not [w for w in caught if UNREGISTERED in str(w.message)]
    # create_graph changes nothing in the first derivative.
    plain = torch.autograd.grad(fn(backend).pow(2).sum(), inputs)
    for g, p in zip(grads, plain, strict=True):
        assert g.requires_grad
        torch.testing.assert_close(g, p, rtol=0, atol=0)
    op = case.split("-")[0]
    with pytest.raises(
        NotImplementedError, match=rf"recperf::{op} is differentiable once, not twice"
    ):
        torch.autograd.grad(sum((g * g).sum() for g in grads), inputs)


def test_gradgradcheck_is_refused():
    """gradgradcheck in float64 (the torch backend's) cannot pass silently: it meets the
    refusal."""
    x = leaf((2, 3, 2), torch.float64, 14)
    with pytest.raises(NotImplementedError, match="not twice"):
        torch.autograd.gradgradcheck(lambda t: recperf.fm_pairwise(t, False, "torch"), (x,))


def test_backward_ops_called_directly_refuse_their_derivative():
    x, grad = leaf((2, 4, 3), torch.float32, 15), leaf((2, 6), torch.float32, 16)
    out = torch.ops.recperf.fm_pairwise_backward(grad, x, False)
    assert out.requires_grad
    with pytest.raises(NotImplementedError, match="recperf::fm_pairwise_backward has no"):
        out.sum().backward()
    # Nothing tracked, nothing attached: the backward op is a plain function then.
    assert not torch.ops.recperf.fm_pairwise_backward(grad.detach(), x.detach()).requires_grad


@pytest.mark.parametrize("grouped", [False, True])
def test_training_forward_called_directly_refuses_a_derivative(grouped):
    _, (x, w, *_) = linear_norm(torch.float32, "layer", grouped)
    prefix = "grouped_" if grouped else ""
    op = getattr(torch.ops.recperf, f"{prefix}linear_norm_forward")
    out, _ = op(x, w)
    with pytest.raises(NotImplementedError, match=rf"differentiate recperf::{prefix}linear_norm "):
        torch.autograd.grad(out.sum(), x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_permute_chunks_is_twice_differentiable(backend):
    x = leaf((7, 3), torch.float64, 17)
    sizes, order = torch.tensor([2, 0, 4, 1]), torch.tensor([2, 0, 3, 1])
    # float64 rows are bytes to every backend: the permutation is exact.
    assert torch.autograd.gradgradcheck(
        lambda t: recperf.permute_chunks(t, sizes, order, backend), (x,)
    )


def test_fp8_gemm_second_derivative_is_exact():
    """d(out)/d(bias) is the identity per row: grad_bias = grad.sum(0), linear in grad,
    so the derivative of <grad_bias, v> with respect to grad is v on every row."""
    a, a_scale = recperf.quantize_fp8(torch.randn(5, 16))
    b, b_scale = recperf.quantize_fp8(torch.randn(3, 16))
    bias = leaf((3,), torch.float32, 18)
    out = recperf.fp8_gemm(a, a_scale, b, b_scale, bias, torch.float32)
    grad = leaf((5, 3), torch.float32, 19)
    (grad_bias,) = torch.autograd.grad(out, bias, grad, create_graph=True)
    v = torch.randn(3)
    (second,) = torch.autograd.grad(grad_bias, grad, v)
    torch.testing.assert_close(second, v.expand(5, 3), rtol=0, atol=0)


def test_quantizations_carry_no_gradient():
    x = leaf((4, 8), torch.float32, 20)
    for op in (recperf.quantize_fp8, recperf.quantize_fp8_transposed):
        q, scale = op(x)
        assert not q.requires_grad and not scale.requires_grad
