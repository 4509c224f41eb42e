"""FM ops on a CUDA device: every GPU backend against float64 references, forward and
every gradient, awkward and benchmark shapes, every dtype; opcheck and compile on CUDA.

Skipped without a GPU (the CPU paths of the same ops are tested in test_fm.py). The
test ids name the backend and the op: bench/collect_gpu_results.py reads them to record
which backends passed on the device.
"""

from __future__ import annotations

import pytest
import torch
from numerics import TOL, assert_close, rel_err

import recperf
from recperf.ops import fm_ref

pytestmark = pytest.mark.gpu

BACKENDS = ["triton", "cuda"]  # the torch backend on CUDA: test_gpu_torch_backend
OPS = ["fm_pairwise", "fm_projected", "fm_projected_norm"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Awkward shapes, the benchmark ones, and shapes past the Triton kernels' fused register
# tile (recperf.kernels.fm.FUSED_MAX_TILE): n = 256 (16-bit norm backward tiled), k = 64
# (fp32 tiled), n = 300 with k = 72 (every kernel tiled), d = 1030 (past the old d limit).
# Kept short: each new block shape costs a Triton compilation on the device.
SHAPES = [
    (1, 1, 1, 1),
    (3, 7, 13, 3),
    (4, 17, 129, 5),
    (33, 64, 128, 32),
    (16, 128, 128, 32),
    (8, 256, 64, 32),
    (8, 128, 128, 64),
    (3, 300, 72, 72),
    (2, 40, 1030, 40),
]


def _inputs(shape, dtype, seed):
    B, n, d, k = shape
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, n, d, generator=g) * d**-0.25).to(dtype)
    proj = (torch.randn(n, k, generator=g) / n**0.5).to(dtype)
    weight = (1 + 0.5 * torch.randn(n * k, generator=g)).to(dtype)
    bias = (0.5 * torch.randn(n * k, generator=g)).to(dtype)
    return [x, proj, weight, bias]


def _call(op, tensors, backend):
    x, proj, weight, bias = tensors
    if op == "fm_pairwise":
        return recperf.fm_pairwise(x, False, backend), [x]
    if op == "fm_projected":
        return recperf.fm_projected(x, proj, backend), [x, proj]
    return recperf.fm_projected_norm(x, proj, weight, bias, 1e-5, backend), [x, proj, weight, bias]


def _ref(op, tensors):
    x, proj, weight, bias = tensors
    if op == "fm_pairwise":
        return fm_ref.fm_pairwise_ref(x)
    if op == "fm_projected":
        return fm_ref.fm_projected_ref(x, proj)
    return fm_ref.fm_projected_norm_ref(x, proj, weight, bias)


def _call_ref(op, tensors):
    x, proj, weight, bias = tensors
    leaves = {"fm_pairwise": [x], "fm_projected": [x, proj]}.get(op, [x, proj, weight, bias])
    return _ref(op, tensors), leaves


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_forward_backward(backend, op, dtype, shape):
    if op == "fm_projected_norm" and shape[1] * shape[3] <= 2:
        pytest.skip("one or two normalized features: the gradient is an eps cancellation")
    cpu = _inputs(shape, dtype, seed=hash((op, shape)) % 997)
    dev = [t.cuda().requires_grad_(True) for t in cpu]
    out, leaves = _call(op, dev, backend)
    torch.cuda.synchronize()
    cpu64 = [t.double().requires_grad_(True) for t in cpu]
    ref, ref_leaves = _call_ref(op, cpu64)
    tol = TOL[dtype] if dtype == torch.float32 else 1e-2
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out.cpu(), ref, dtype, f"{backend} {op} forward", tol)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    out.backward(grad.cuda())
    ref.backward(grad.double())
    for i, (got, want) in enumerate(zip(leaves, ref_leaves, strict=True)):
        assert got.grad is not None, f"no gradient for input {i}"
        if want.grad.abs().max() < 1e-10:
            assert got.grad.abs().max() < 1e-6
        else:
            assert_close(got.grad.cpu(), want.grad, dtype, f"{backend} {op} grad {i}", tol)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_non_contiguous(backend, op):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 24, 9, generator=g).transpose(1, 2).cuda()  # [4, 9, 24], strided
    proj, weight, bias = (
        torch.randn(9, 4, generator=g),
        torch.randn(36, generator=g),
        torch.randn(36, generator=g),
    )
    tensors = [x, proj.cuda(), weight.cuda(), bias.cuda()]
    out, _ = _call(op, tensors, backend)
    ref = _ref(op, [t.cpu().double() for t in tensors])
    assert rel_err(out.cpu(), ref) <= TOL[torch.float32]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_opcheck(backend, op):
    tensors = [t.cuda().requires_grad_(True) for t in _inputs((3, 6, 20, 4), torch.float32, 5)]
    x, proj, weight, bias = tensors
    ops = torch.ops.recperf
    args = {
        "fm_pairwise": (ops.fm_pairwise.default, (x, False, backend)),
        "fm_projected": (ops.fm_projected.default, (x, proj, backend)),
        "fm_projected_norm": (
            ops.fm_projected_norm.default,
            (x, proj, weight, bias, 1e-5, backend),
        ),
    }[op]
    torch.library.opcheck(*args)


@pytest.mark.parametrize("op", OPS)
def test_gpu_torch_backend(op):
    tensors = [t.cuda() for t in _inputs((5, 12, 40, 6), torch.float32, 7)]
    out, _ = _call(op, tensors, "torch")
    assert rel_err(out.cpu(), _ref(op, [t.cpu().double() for t in tensors])) <= TOL[torch.float32]


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_compile_fullgraph(backend):
    torch._dynamo.reset()
    module = recperf.nn.FMInteraction(16, rank=8, backend=backend).cuda()
    pair = recperf.nn.FMInteraction(16, mode="pairwise", backend=backend)
    model = lambda x: module(x).sum() + pair(x).sum()  # noqa: E731
    x = torch.randn(64, 16, 32, device="cuda")
    compiled = torch.compile(model, fullgraph=True)
    assert_close(compiled(x), model(x), torch.float32, f"{backend} compiled", 1e-4)
