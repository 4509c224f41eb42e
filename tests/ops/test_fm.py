"""FM ops: every backend that runs here against float64 references, forward and every
gradient, over awkward shapes, every dtype, non-contiguous inputs; opcheck; compile."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_backends
from numerics import TOL, assert_close, rel_err

import recperf
from recperf import dispatch
from recperf.ops import fm_ref
from recperf.ops.backends import triton_missing
from recperf.ops.fm import pair_count

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# (B, n, d, k): n = 1 and 2, primes, d = 1, d not a multiple of 16, n*k one past a block
# (17 = 16 + 1, 65 = 64 + 1), batch 1, and a batch large enough to split across threads.
SHAPES = [
    (1, 1, 1, 1),
    (2, 2, 3, 1),
    (3, 7, 13, 3),
    (1, 17, 16, 1),
    (2, 13, 31, 5),
    (4, 5, 129, 13),
    (257, 8, 24, 4),
    (3, 9, 20, 33),  # k past two 16-wide panels: the two-panel tile and a one-panel tail
    (2, 41, 24, 6),  # upper-only Gram tiles that start mid-panel, with and without the next
    (2, 29, 40, 18),  # fm_projected_norm's Gram route: a row tail, a partial panel pair
]
# The Triton interpreter is slow: its own (smaller) list keeps the same awkward cases, and
# shapes past the fused kernels' register tile (recperf.kernels.fm.FUSED_MAX_TILE, _K):
# k = 40 (fused for 16-bit x, tiled for fp32), n = 129 (the fp32 backward and the 16-bit
# norm backward tiled), d = 130 (several d chunks of the fused kernels).
TRITON_SHAPES = [
    (1, 1, 1, 1),
    (2, 2, 3, 1),
    (3, 7, 13, 3),
    (1, 17, 16, 1),
    (2, 5, 33, 13),
    (2, 3, 8, 40),
    (1, 129, 3, 2),
    (1, 2, 130, 3),
]
# The tiled path at small sizes (thresholds lowered): n, d and k span two or three 16-wide
# tiles, each with a tail (19 = 16 + 3, 21, 35 = 2 * 16 + 3); and a single element.
TILED_SHAPES = [(1, 1, 1, 1), (1, 19, 21, 35)]


def shapes_for(backend):
    return TRITON_SHAPES if backend == "triton" else SHAPES


def cases(dtypes=DTYPES):
    return [
        pytest.param(backend, dtype, shape, id=f"{backend}-{str(dtype)[6:]}-{shape}")
        for backend in cpu_backends()
        for dtype in dtypes
        for shape in shapes_for(backend)
    ]


def make(shape, dtype, seed, contiguous=True, param_dtype=None):
    B, n, d, k = shape
    g = torch.Generator().manual_seed(seed)
    if contiguous:
        x = torch.randn(B, n, d, generator=g)
    else:  # a transposed view: strides (n*d, 1, n)
        x = torch.randn(B, d, n, generator=g).transpose(1, 2)
    x = x.to(dtype)
    pd = param_dtype or dtype
    proj = (torch.randn(n, k, generator=g) / n**0.5).to(pd)
    weight = (1 + 0.5 * torch.randn(n * k, generator=g)).to(pd)
    bias = (0.5 * torch.randn(n * k, generator=g)).to(pd)
    return x, proj, weight, bias


def tol(dtype, out, ref, same_math_in_dtype):
    """The dtype's tolerance; for 16-bit outputs also no worse than twice the error of
    torch doing the same math in that dtype."""
    if dtype == torch.float32:
        return TOL[dtype]
    return max(TOL[dtype], 2 * rel_err(same_math_in_dtype, ref))


def grad_tol(dtype):
    """Gradients arrive rounded to the dtype and leave rounded to it: bf16 ~1e-2."""
    return TOL[dtype] if dtype == torch.float32 else 1e-2


def incoming_grad(out, seed):
    """The gradient flowing into out, from its own seed (the same whatever ran before)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out.shape, generator=g).to(out.dtype)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def grads_ref(fn, inputs, grad):
    """Gradients of a float64 reference at the same (upcast) inputs."""
    leaves = [leaf(t.double()) if t is not None else None for t in inputs]
    out = fn(*leaves)
    out.backward(grad.double())
    return out, [t.grad if t is not None else None for t in leaves]


# ------------------------------------------------------------------------------------
# forward + backward against float64


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("backend,dtype,shape", cases())
def test_pairwise(backend, dtype, shape, include_self):
    x, *_ = make(shape, dtype, seed=hash((shape, include_self)) % 1000)
    B, n, _, _ = shape
    xl = leaf(x)
    out = recperf.fm_pairwise(xl, include_self, backend=backend)
    assert out.shape == (B, pair_count(n, include_self)) and out.dtype == dtype
    grad = incoming_grad(out, seed=11)
    ref, (gx_ref,) = grads_ref(lambda a: fm_ref.fm_pairwise_ref(a, include_self), [x], grad)
    i, j = torch.triu_indices(n, n, 0 if include_self else 1)
    plain = torch.bmm(x, x.transpose(1, 2))[:, i, j]  # torch's own math in dtype
    assert_close(out, ref, dtype, "fm_pairwise", tol(dtype, out, ref, plain))
    out.backward(grad)
    assert_close(xl.grad, gx_ref, dtype, "fm_pairwise grad_x", grad_tol(dtype))


@pytest.mark.parametrize("backend,dtype,shape", cases())
def test_projected(backend, dtype, shape):
    x, proj, _, _ = make(shape, dtype, seed=1)
    xl, pl = leaf(x), leaf(proj)
    out = recperf.fm_projected(xl, pl, backend=backend)
    assert out.shape == (*shape[:2], shape[3]) and out.dtype == dtype
    grad = incoming_grad(out, seed=12)
    ref, (gx_ref, gp_ref) = grads_ref(fm_ref.fm_projected_ref, [x, proj], grad)
    plain = torch.bmm(x, x.transpose(1, 2) @ proj)
    assert_close(out, ref, dtype, "fm_projected", tol(dtype, out, ref, plain))
    out.backward(grad)
    gtol = grad_tol(dtype)
    assert_close(xl.grad, gx_ref, dtype, "fm_projected grad_x", gtol)
    assert_close(pl.grad, gp_ref, dtype, "fm_projected grad_proj", gtol)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("backend,dtype,shape", cases())
def test_projected_norm(backend, dtype, shape, affine):
    if shape[1] * shape[3] == 2:
        # Two normalized features are always +-1: their gradient is a cancellation down to
        # ~eps, where relative errors mean nothing. n = 2 is checked with k = 2 instead.
        shape = (*shape[:3], 2)
    x, proj, weight, bias = make(shape, dtype, seed=2)
    if not affine:
        weight = bias = None
    leaves = [leaf(t) if t is not None else None for t in (x, proj, weight, bias)]
    out = recperf.fm_projected_norm(*leaves, eps=1e-5, backend=backend)
    assert out.shape == (shape[0], shape[1] * shape[3]) and out.dtype == dtype
    grad = incoming_grad(out, seed=13)
    ref, grads = grads_ref(fm_ref.fm_projected_norm_ref, [x, proj, weight, bias], grad)
    f = torch.bmm(x, x.transpose(1, 2) @ proj).flatten(1)
    plain = torch.nn.functional.layer_norm(f, (f.shape[1],), weight, bias, 1e-5)
    assert_close(out, ref, dtype, "fm_projected_norm", tol(dtype, out, ref, plain))
    out.backward(grad)
    gtol = grad_tol(dtype)
    # n*k = 1 normalizes a single feature: its output is the bias and nothing flows back.
    for name, got, want in zip(("x", "proj", "weight", "bias"), leaves, grads, strict=True):
        if got is None:
            continue
        if want.abs().max() < 1e-10:  # zero up to the reference's own rounding
            assert got.grad.abs().max() < 1e-6, f"grad_{name} should be zero: {got.grad}"
        else:
            assert_close(got.grad, want, dtype, f"fm_projected_norm grad_{name}", gtol)


@pytest.mark.skipif("triton" not in cpu_backends(), reason="needs Triton's interpreter")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", TILED_SHAPES, ids=str)
def test_triton_tiled_path(monkeypatch, shape, dtype):
    """The Triton kernels' tiled path (batched products, row-norm kernels), forced for
    every projected kernel, forward and backward against float64; the norm's rows in
    chunks of 64 (two-pass statistics across chunks, as for n * k > 4096)."""
    from recperf.kernels import fm as fm_kernels
    from recperf.kernels import linear_norm as ln_kernels

    monkeypatch.setattr(fm_kernels, "FUSED_MAX_TILE", dict.fromkeys(fm_kernels.FUSED_MAX_TILE, 0))
    monkeypatch.setattr(fm_kernels, "TILED_MAX_BLOCK", 16)
    monkeypatch.setattr(ln_kernels, "ROWS_MAX_C", 64)
    products = []
    real = fm_kernels._bmm
    monkeypatch.setattr(fm_kernels, "_bmm", lambda *a, **kw: products.append(1) or real(*a, **kw))
    test_projected("triton", dtype, shape)
    assert len(products) == 2 + 4  # F = x (x^T P); T, gT, grad_x, grad_proj
    for affine in (True, False):
        test_projected_norm("triton", dtype, shape, affine)


def test_triton_takes_every_shape():
    """No Triton FM shape limit: a forced triton takes any size (no tensor is made)."""
    if triton_missing() is not None:
        pytest.skip(triton_missing())
    shape = {"B": 4096, "n": 1000, "d": 4096, "k": 256}
    for kernel in ("fm_pairwise_fwd", "fm_projected_bwd", "fm_projected_norm_bwd"):
        inputs = dispatch.Inputs(device=torch.device("cuda"), dtype=torch.bfloat16, shape=shape)
        assert dispatch.choose(kernel, inputs, "triton").backend == "triton"


# ------------------------------------------------------------------------------------
# layouts and mixed precision


@pytest.mark.parametrize("backend", cpu_backends())
def test_non_contiguous_inputs(backend):
    shape = (3, 7, 13, 3)
    x, proj, weight, bias = make(shape, torch.float32, seed=3, contiguous=False)
    assert not x.is_contiguous()
    for got, want in (
        (recperf.fm_pairwise(x, backend=backend), fm_ref.fm_pairwise_ref(x.double())),
        (
            recperf.fm_projected(x, proj.t().contiguous().t(), backend=backend),
            fm_ref.fm_projected_ref(x.double(), proj.double()),
        ),
        (
            recperf.fm_projected_norm(x, proj, weight[::1], bias, backend=backend),
            fm_ref.fm_projected_norm_ref(x.double(), proj.double(), weight.double(), bias.double()),
        ),
    ):
        assert_close(got, want, torch.float32, f"non-contiguous x ({backend})")
    # a non-contiguous incoming gradient (expanded: stride 0)
    xl, pl = leaf(x), leaf(proj)
    out = recperf.fm_projected(xl, pl, backend=backend)
    grad = torch.randn(1, 7, 3).expand_as(out)
    out.backward(grad)
    _, (gx, gp) = grads_ref(fm_ref.fm_projected_ref, [x, proj], grad.contiguous())
    assert_close(xl.grad, gx, torch.float32, "grad_x from expanded grad")
    assert_close(pl.grad, gp, torch.float32, "grad_proj from expanded grad")


@pytest.mark.parametrize("backend", cpu_backends())
def test_fp32_params_with_bf16_x(backend):
    x, proj, weight, bias = make((2, 5, 17, 4), torch.bfloat16, seed=4, param_dtype=torch.float32)
    leaves = [leaf(t) for t in (x, proj, weight, bias)]
    out = recperf.fm_projected_norm(*leaves, backend=backend)
    assert out.dtype == torch.bfloat16
    ref = fm_ref.fm_projected_norm_ref(*(t.double() for t in (x, proj, weight, bias)))
    assert_close(out, ref, torch.bfloat16, "bf16 x with fp32 params")
    out.float().sum().backward()
    assert leaves[1].grad.dtype == torch.float32 and leaves[2].grad.dtype == torch.float32
    assert leaves[0].grad.dtype == torch.bfloat16


def test_empty_batch():
    x, proj, weight, bias = make((1, 4, 8, 2), torch.float32, seed=5)
    x = x[:0]
    assert recperf.fm_pairwise(x).shape == (0, 6)
    xl, pl = leaf(x), leaf(proj)
    out = recperf.fm_projected_norm(xl, pl, weight, bias)
    assert out.shape == (0, 8)
    out.sum().backward()
    assert torch.equal(pl.grad, torch.zeros_like(proj))


# ------------------------------------------------------------------------------------
# float64: gradcheck through the dispatcher (served by the torch backend)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(6)

    def t(*size):
        return torch.randn(*size, generator=g, dtype=torch.float64, requires_grad=True)

    x, proj, w, b = t(2, 5, 4), t(5, 3), t(15), t(15)
    assert torch.autograd.gradcheck(lambda a: recperf.fm_pairwise(a, True), (x,))
    assert torch.autograd.gradcheck(recperf.fm_projected, (x, proj))
    assert torch.autograd.gradcheck(recperf.fm_projected_norm, (x, proj, w, b))


def test_compiled_kernels_decline_float64_with_a_reason():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"backend 'cpp' was forced.*dtype torch.float64"):
        recperf.fm_pairwise(x, backend="cpp")


# ------------------------------------------------------------------------------------
# opcheck: schema, autograd registration, fake kernel, AOT dispatch


@pytest.mark.parametrize("backend", cpu_backends())
def test_opcheck(backend):
    x, proj, weight, bias = make((2, 5, 7, 3), torch.float32, seed=7)
    x, proj, weight, bias = (leaf(t) for t in (x, proj, weight, bias))
    ops = torch.ops.recperf
    samples = [
        (ops.fm_pairwise.default, (x, False, backend)),
        (ops.fm_pairwise.default, (x, True, backend)),
        (ops.fm_projected.default, (x, proj, backend)),
        (ops.fm_projected_norm.default, (x, proj, weight, bias, 1e-5, backend)),
        (ops.fm_projected_norm.default, (x, proj, None, None, 1e-3, backend)),
    ]
    d = lambda t: t.detach()  # noqa: E731
    grad_pairs = torch.randn(2, 10)
    samples += [
        (ops.fm_pairwise_backward.default, (grad_pairs, d(x), False, backend)),
        (ops.fm_projected_backward.default, (torch.randn(2, 5, 3), d(x), d(proj), backend)),
        (
            ops.fm_projected_norm_backward.default,
            (torch.randn(2, 15), d(x), d(proj), d(weight), None, 1e-5, backend),
        ),
    ]
    for op, args in samples:
        torch.library.opcheck(op, args)


# ------------------------------------------------------------------------------------
# torch.compile(fullgraph=True) of a small model using each op


def test_compile_fullgraph():
    torch._dynamo.reset()
    fm_norm = recperf.nn.FMInteraction(6, rank=3)
    fm_proj = recperf.nn.FMInteraction(6, rank=2, mode="projected")
    fm_pair = recperf.nn.FMInteraction(6, mode="pairwise", include_self=True)

    def model(x):
        return torch.cat([fm_norm(x), fm_proj(x).flatten(1), fm_pair(x)], dim=1).sum()

    x = torch.randn(4, 6, 8)
    compiled = torch.compile(model, fullgraph=True)
    xe, xc = leaf(x), leaf(x)
    eager_out, compiled_out = model(xe), compiled(xc)
    assert_close(compiled_out, eager_out, torch.float32, "compiled forward")
    eager_out.backward()
    compiled_out.backward()
    assert_close(xc.grad, xe.grad, torch.float32, "compiled backward")
