"""The compiled CPU fast path in front of the Python dispatcher (csrc/ops/fast_path.h):
it gives the dispatcher's answer bit for bit, steps aside whenever the dispatcher might
choose otherwise or reject the call, and linear_norm's training forward hands its GEMM
product to the backward on every backend."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_backends
from numerics import assert_close

import recperf
from recperf import dispatch
from recperf.ops.linear_norm_ref import linear_norm_backward_ref, linear_norm_ref, preact_ref


@pytest.fixture
def choices(monkeypatch):
    """The kernels the Python dispatcher chose, in call order: the fast path calls none."""
    chosen = []
    real = dispatch.choose

    def spy(kernel, inputs, requested="auto"):
        impl = real(kernel, inputs, requested)
        chosen.append((kernel, impl.backend))
        return impl

    monkeypatch.setattr(dispatch, "choose", spy)
    return chosen


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]


def step(fn, tensors, seed=7):
    """Output and every gradient of fn(*tensors) under a fixed random output gradient."""
    inputs = leaves(*tensors)
    out = fn(*inputs)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out))
    return [out.detach(), *(t.grad for t in inputs if t is not None)]


def dispatched_cpp(fn, *args):
    """fn through the Python dispatcher, which still picks cpp: a use_backend block sends
    every call to the dispatcher, and the op's backend argument outranks the block."""
    with recperf.use_backend("torch"):
        return fn(*args)


def linear_norm_tensors(dtype, grouped=0, residual=True, M=37, K=29, N=19):
    g = torch.Generator().manual_seed(3)
    lead = (grouped,) if grouped else ()
    x = torch.randn(*lead, M, K, generator=g).to(dtype)
    w = (torch.randn(*lead, N, K, generator=g) * K**-0.5).to(dtype)
    vec = [(torch.randn(*lead, N, generator=g) * 0.1 + s).to(dtype) for s in (0.0, 1.0, 0.0)]
    res = torch.randn(*lead, M, N, generator=g).to(dtype) if residual else None
    return [x, w, vec[0], res, vec[1], vec[2]]


@pytest.mark.parametrize("grouped", [0, 3])
@pytest.mark.parametrize("recipe", ["fp32", "bf16"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("norm", ["layer", "rms", "none"])
def test_linear_norm_fast_path_is_the_dispatched_cpp_kernel(norm, dtype, recipe, grouped, choices):
    op = recperf.grouped_linear_norm if grouped else recperf.linear_norm
    tensors = linear_norm_tensors(dtype, grouped, residual=norm != "rms")
    if norm != "layer":
        tensors[5] = None  # no norm bias
    if norm == "none":
        tensors[4] = None

    def fn(*t):
        return op(*t, norm=norm, recipe=recipe, backend="cpp")

    fast = step(fn, tensors)
    assert choices == []
    slow = dispatched_cpp(step, fn, tensors)
    assert {backend for _, backend in choices} == {"cpp"} and len(choices) == 2
    for got, want in zip(fast, slow, strict=True):
        assert got.dtype == want.dtype and torch.equal(got, want)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        (recperf.fm_pairwise, (False,)),
        (recperf.fm_pairwise, (True,)),
        (recperf.fm_projected, ()),
        (recperf.fm_projected_norm, ()),
    ],
    ids=["pairwise", "pairwise-self", "projected", "projected_norm"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fm_fast_path_is_the_dispatched_cpp_kernel(op, args, dtype, choices):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 7, 13, generator=g).to(dtype)
    tensors = [x]
    if op is not recperf.fm_pairwise:
        tensors.append((torch.randn(7, 3, generator=g) / 7**0.5).to(dtype))
    if op is recperf.fm_projected_norm:
        tensors += [torch.rand(21, generator=g).to(dtype), torch.randn(21, generator=g).to(dtype)]

    def fn(*t):
        return op(*t, *args, backend="cpp")

    fast = step(fn, tensors)
    assert choices == []
    slow = dispatched_cpp(step, fn, tensors)
    assert len(choices) == 2
    for got, want in zip(fast, slow, strict=True):
        assert torch.equal(got, want)


def test_fast_path_steps_aside_whenever_the_dispatcher_may_choose_otherwise(choices, monkeypatch):
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    xf, proj = torch.randn(2, 3, 4), torch.randn(3, 2)

    def backends_of(call):
        choices.clear()
        call()
        return [backend for _, backend in choices]

    assert backends_of(lambda: recperf.linear_norm(x, w, recipe="fp32")) == []
    assert backends_of(lambda: recperf.fm_projected(xf, proj)) == []
    with recperf.use_backend("cpp"):  # forcing the fast path's own backend changes nothing
        assert backends_of(lambda: recperf.fm_projected(xf, proj)) == []
    assert backends_of(lambda: recperf.fm_projected(xf, proj, backend="torch")) == ["torch"]
    with recperf.use_backend("torch"):
        assert backends_of(lambda: recperf.linear_norm(x, w, recipe="fp32")) == ["torch"]
    assert backends_of(lambda: recperf.linear_norm(x.double(), w.double())) == ["torch"]
    assert backends_of(lambda: recperf.linear_norm(x[:0], w, recipe="fp32")) == ["torch"]
    assert backends_of(lambda: recperf.linear_norm(x, w, recipe="fp8_rowwise")) == ["cpp"]
    assert backends_of(lambda: recperf.fm_projected(xf[:0], proj)) == ["torch"]
    monkeypatch.setenv("RECPERF_BACKEND", "torch")
    assert backends_of(lambda: recperf.fm_projected(xf, proj)) == ["torch"]
    monkeypatch.setenv("RECPERF_BACKEND", "cpp")
    assert backends_of(lambda: recperf.fm_projected(xf, proj)) == []


def test_a_use_backend_block_that_raises_still_closes():
    with pytest.raises(RuntimeError, match="boom"), recperf.use_backend("torch"):
        raise RuntimeError("boom")
    assert torch.ops.recperf_kernels.forcing_blocks(0) == 0


def test_bad_input_gets_the_dispatchers_error_on_the_fast_path_op():
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with pytest.raises(ValueError, match=r"weight.shape\[-1\] must be x's in features K = 8"):
        torch.ops.recperf.linear_norm(x, w[:, :5])
    with pytest.raises(ValueError, match=r"preact must have the output's shape \(4, 6\)"):
        torch.ops.recperf.linear_norm_backward(
            torch.randn(4, 6), x, w, None, None, None, None, "none", 1e-5, "fp32",
            preact=torch.randn(4, 5),
        )  # fmt: skip
    with pytest.raises(TypeError, match=r"preact must be torch\.float32"):
        torch.ops.recperf.linear_norm_backward(
            torch.randn(4, 6), x, w, None, None, None, None, "none", 1e-5, "fp32",
            preact=torch.randn(4, 6).double(),
        )  # fmt: skip
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        torch.ops.recperf.fm_projected(torch.ones(2, 3, 4, dtype=torch.int32), torch.randn(3, 2))


@pytest.mark.parametrize("recipe", ["fp32", "bf16", "fp8_rowwise"])
@pytest.mark.parametrize("backend", cpu_backends())
def test_training_forward_keeps_the_gemm_product_and_the_backward_uses_it(backend, recipe):
    x, w, bias, res, nw, nb = linear_norm_tensors(torch.float32)
    args = (x, w, bias, res, nw, nb, "layer", 1e-5, recipe, backend)
    out, preact = torch.ops.recperf.linear_norm_forward(*args)
    assert torch.equal(out, torch.ops.recperf.linear_norm(*args))
    assert preact.dtype == torch.float32
    assert_close(preact, preact_ref(x, w, recipe), torch.float32, f"{backend} preact")
    grad = torch.randn(out.shape)
    kept = torch.ops.recperf.linear_norm_backward(grad, *args, preact)
    recomputed = torch.ops.recperf.linear_norm_backward(grad, *args)
    for name, a, b in zip(("dx", "dw", "db", "dres", "dnw", "dnb"), kept, recomputed, strict=True):
        assert_close(a, b, torch.float32, f"{backend} {recipe} {name}", 1e-5)


@pytest.mark.parametrize("grouped", [0, 2])
@pytest.mark.parametrize("backend", cpu_backends())
def test_training_forward_against_float64(backend, grouped):
    """out and preact of *_forward against float64 over awkward shapes (a single row, primes,
    N not a multiple of 16) with a non-contiguous x; the backward from that preact against
    float64 gradients."""
    op = (
        torch.ops.recperf.grouped_linear_norm_forward
        if grouped
        else torch.ops.recperf.linear_norm_forward
    )
    bwd = (
        torch.ops.recperf.grouped_linear_norm_backward
        if grouped
        else torch.ops.recperf.linear_norm_backward
    )
    for M, K, N in [(1, 16, 16), (7, 37, 29), (13, 5, 3)]:
        x, w, bias, res, nw, nb = linear_norm_tensors(torch.float32, grouped, M=M, K=K, N=N)
        x = x.transpose(-2, -1).contiguous().transpose(-2, -1)  # column-major x
        assert not x.is_contiguous() or M == 1
        args = (x, w, bias, res, nw, nb, "layer", 1e-5, "fp32")
        out, preact = op(*args, backend)
        wide = [t.double() for t in (x, w, bias, res, nw, nb)]
        ref_out = linear_norm_ref(*wide, "layer", 1e-5, "fp32")
        what = f"{backend} grouped={grouped} {(M, K, N)}"
        assert_close(out, ref_out, torch.float32, f"{what} out")
        assert_close(preact, wide[0] @ wide[1].transpose(-2, -1), torch.float32, f"{what} preact")
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(M))
        got = bwd(grad, *args, backend, preact)
        want = linear_norm_backward_ref(grad.double(), *wide, "layer", 1e-5, "fp32")
        for name, g, r in zip(("dx", "dw", "db", "dres", "dnw", "dnb"), got, want, strict=True):
            assert_close(g, r, torch.float32, f"{what} {name}", 2e-5)


def test_training_forward_rejects_bad_input():
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with pytest.raises(ValueError, match=r"weight.shape\[-1\] must be x's in features K = 8"):
        torch.ops.recperf.linear_norm_forward(x, w[:, :5])
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        torch.ops.recperf.linear_norm_forward(x.int(), w)
    with pytest.raises(ValueError, match="recipe must be one of"):
        torch.ops.recperf.linear_norm_forward(x, w, recipe="fp4")
    with pytest.raises(ValueError, match=r"weight.shape\[0\] must be x's group count 2"):
        torch.ops.recperf.grouped_linear_norm_forward(x.expand(2, 4, 8), w.expand(3, 6, 8))


def test_opcheck_training_forward_and_backward_with_preact():
    x, w, bias, res, nw, nb = linear_norm_tensors(torch.float32, M=5, K=16, N=8)
    args = (x, w, bias, res, nw, nb, "layer", 1e-5, "fp32")
    torch.library.opcheck(torch.ops.recperf.linear_norm_forward.default, args)
    preact = x @ w.T
    grad = torch.randn(5, 8)
    torch.library.opcheck(
        torch.ops.recperf.linear_norm_backward.default, (grad, *args, "auto", preact)
    )
    g = linear_norm_tensors(torch.float32, grouped=2, M=5, K=16, N=8)
    torch.library.opcheck(
        torch.ops.recperf.grouped_linear_norm_forward.default, (*g, "layer", 1e-5, "bf16")
    )
    g_preact = g[0] @ g[1].transpose(-2, -1)
    torch.library.opcheck(
        torch.ops.recperf.grouped_linear_norm_backward.default,
        (torch.randn(2, 5, 8), *g, "layer", 1e-5, "bf16", "auto", g_preact),
    )
