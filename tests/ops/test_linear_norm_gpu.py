"""linear_norm and grouped_linear_norm on a CUDA device: every GPU backend, every recipe
and norm, forward and gradients against float64 (FP8 by SQNR) and against the torch
backend's recipe numerics; compile. Skipped without a GPU (CPU: test_linear_norm.py).
Test ids start with backend-op (bench/collect_gpu_results.py)."""

from __future__ import annotations

import pytest
import torch
from numerics import assert_close, rel_err
from test_linear_norm import exact, make, run, sqnr_db

import recperf
from recperf.ops.recipes import RECIPES

pytestmark = pytest.mark.gpu

BACKENDS = ["triton", "cuda", "torch"]
SHAPES = [(1, 16, 16), (33, 40, 24), (512, 256, 512), (2048, 1024, 1024)]


def on_gpu(tensors):
    return [t.cuda() if t is not None else None for t in tensors]


@pytest.mark.parametrize("norm", ["layer", "rms", "none"])
@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("op", ["linear_norm", "grouped_linear_norm"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_linear_norm(backend, op, recipe, norm):
    fn = recperf.grouped_linear_norm if op.startswith("grouped") else recperf.linear_norm
    for i, (M, K, N) in enumerate(SHAPES):
        if op.startswith("grouped") and M > 512:
            continue
        tensors = make(
            M, K, N, norm, seed=i, params=i != 0, grouped=3 if op.startswith("grouped") else 0
        )
        grad = torch.randn(*(tensors[0].shape[:-1]), N, generator=torch.Generator().manual_seed(1))
        y, grads = run(fn, on_gpu(tensors), norm, recipe, backend, grad.cuda())
        ref_y, ref_grads = exact(fn, tensors, norm, grad)
        what = f"{backend} {op} {recipe} {norm} {(M, K, N)}"
        if recipe in ("fp32", "bf16"):
            tol = 1e-5 if recipe == "fp32" else 1e-2
            assert_close(y.cpu(), ref_y, torch.float32, what, tol)
            for got, want in zip(grads, ref_grads, strict=True):
                if want is not None:
                    assert_close(got.cpu(), want, torch.float32, f"{what} grad", 2 * tol)
        else:
            assert sqnr_db(y.cpu(), ref_y) >= 25, what
            for got, want in zip(grads, ref_grads, strict=True):
                if want is not None:
                    assert sqnr_db(got.cpu(), want) >= 15, f"{what} grad"
            if backend != "torch":  # the recipe's own numerics, up to accumulation order
                ref_recipe, _ = run(fn, on_gpu(tensors), norm, recipe, "torch", grad.cuda())
                assert rel_err(y.cpu(), ref_recipe.cpu()) <= 1e-2, what


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_compile_fullgraph(backend):
    torch._dynamo.reset()
    layer = recperf.nn.LinearNorm(256, 128, recipe="fp8_rowwise", backend=backend).cuda()
    x = torch.randn(512, 256, device="cuda")
    compiled = torch.compile(lambda t: layer(t).sum(), fullgraph=True)
    assert_close(compiled(x), layer(x).sum(), torch.float32, f"{backend} compiled", 1e-4)
