"""linear_norm's compiled CPU composite (csrc/ops/linear_norm_composite.cpp): its GEMM by
row blocks (bf16 x bf16 -> fp32 on AVX512-BF16 where the CPU has it, fp32 products of the
bf16 values otherwise) against float64 over awkward shapes and layouts, on both paths;
non-finite input; errors that name the argument."""

from __future__ import annotations

import pytest
import torch
from numerics import assert_close

import recperf  # noqa: F401  (loads the compiled ops)

_k = torch.ops.recperf_kernels

# (G, M, K, N): a single element, one row, odd K, N past a 32-column panel with a tail,
# M past a 256-row block, primes; G = 0 for rank-2 operands.
SHAPES = [(0, 1, 1, 1), (0, 1, 16, 16), (0, 7, 37, 29), (0, 13, 5, 3), (0, 300, 67, 97),
          (3, 9, 24, 40), (2, 260, 33, 17)]  # fmt: skip


@pytest.fixture(params=["instructions", "fallback"])
def bf16_path(request, monkeypatch):
    """Both bf16 paths: the AVX512-BF16 kernel (where this CPU has it) and the fp32 GEMM
    of bf16 values that CPUs without it run."""
    if request.param == "fallback":
        monkeypatch.setenv("RECPERF_CPU_BF16_INSTRUCTIONS", "0")
    return request.param


def operands(G, M, K, N, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    lead = (G,) if G else ()
    a = torch.randn(*lead, K, M, generator=g).to(dtype).transpose(-2, -1)  # non-contiguous
    b = (torch.randn(*lead, N, K, generator=g) * K**-0.5).to(dtype)
    return a, b


def rounded64(t, precision):
    return (t.bfloat16() if precision == "bf16" else t.float()).double()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_linear_gemm_against_float64(precision, dtype, bf16_path):
    for i, (G, M, K, N) in enumerate(SHAPES):
        a, b = operands(G, M, K, N, dtype, seed=i)
        c = _k.linear_gemm(a, b, precision)
        assert c.dtype == torch.float32 and c.shape == (*a.shape[:-1], N)
        # fp32 accumulation of exact products: fp32 accuracy against the rounded operands
        want = rounded64(a, precision) @ rounded64(b, precision).transpose(-2, -1)
        assert_close(c, want, torch.float32, f"{precision} {dtype} {bf16_path} {(G, M, K, N)}")


def test_both_bf16_paths_agree_on_the_backward_forms(monkeypatch):
    """The GEMMs of the backward, operands as the composite passes them: dgrad dz . W
    (b a transposed view) and wgrad dz^T . x (both transposed views)."""
    x, w = operands(0, 70, 45, 50, torch.bfloat16, seed=5)
    dz = torch.randn(70, 50, generator=torch.Generator().manual_seed(6))
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("RECPERF_CPU_BF16_INSTRUCTIONS", flag)
        results.append([
            _k.linear_gemm(dz, w.transpose(-2, -1), "bf16"),
            _k.linear_gemm(dz.transpose(-2, -1), x.transpose(-2, -1), "bf16"),
        ])  # fmt: skip
    want = [
        rounded64(dz, "bf16") @ rounded64(w, "bf16"),
        rounded64(dz, "bf16").T @ rounded64(x, "bf16"),
    ]
    for fast, slow, ref in zip(*results, want, strict=True):
        assert_close(fast, ref, torch.float32, "bf16 instructions")
        assert_close(slow, ref, torch.float32, "bf16 fallback")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_non_finite_input_stays_in_its_row_and_column(precision, bf16_path):
    a, b = operands(0, 11, 40, 35, torch.float32, seed=9)
    a = a.contiguous()
    a[3, 7] = float("nan")
    b[20, 39] = float("inf")
    c = _k.linear_gemm(a, b, precision)
    assert c[3].isnan().all()
    assert not c[:, 20].isfinite().any()
    rows = [r for r in range(11) if r != 3]
    cols = [n for n in range(35) if n != 20]
    assert c[rows][:, cols].isfinite().all()


def test_composite_forward_runs_the_epilogue_on_every_row_block(bf16_path):
    """M past several row blocks: every block's rows get the bias, residual and norm."""
    g = torch.Generator().manual_seed(4)
    M, K, N = 600, 40, 48
    x, w = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g) * K**-0.5
    bias, res = torch.randn(N, generator=g), torch.randn(M, N, generator=g)
    nw, nb = torch.rand(N, generator=g) + 0.5, torch.randn(N, generator=g)
    for recipe in ("fp32", "bf16"):
        out, preact = _k.linear_norm_composite_forward(
            x, w, bias, res, nw, nb, "layer", 1e-5, recipe
        )
        want_z = rounded64(x, recipe) @ rounded64(w, recipe).T
        assert_close(preact, want_z, torch.float32, f"{recipe} preact")
        want = torch.nn.functional.layer_norm(
            want_z + bias.double() + res.double(), (N,), nw.double(), nb.double(), 1e-5
        )
        assert_close(out, want, torch.float32, f"{recipe} out")


def test_errors_name_the_argument():
    a, b = torch.randn(4, 8), torch.randn(6, 8)
    with pytest.raises(ValueError, match=r"precision must be 'fp32' or 'bf16'.*got 'fp8'"):
        _k.linear_gemm(a, b, "fp8")
    with pytest.raises(ValueError, match=r"b must be \[.., N, K\] with a's group count and K"):
        _k.linear_gemm(a, b[:, :5], "bf16")
    with pytest.raises(ValueError, match="a and b must both have rank 2 or both rank 3"):
        _k.linear_gemm(a, b[None], "bf16")
    with pytest.raises(TypeError, match="a and b must be floating-point"):
        _k.linear_gemm(a.int(), b, "fp32")
    with pytest.raises(ValueError, match=r"recipe must be 'fp32' or 'bf16'.*got 'fp8_rowwise'"):
        _k.linear_norm_composite_forward(a, b, None, None, None, None, "none", 1e-5,
                                         "fp8_rowwise")  # fmt: skip


def test_schemas_hold_no_hidden_mutation_or_aliasing():
    """The compiled composite's ops are internal (only the public ops, opchecked in full,
    reach torch.compile), so no fake kernels: opcheck's schema test checks that they write
    none of their inputs and return no alias of one."""
    g = torch.Generator().manual_seed(7)
    M, K, N = 9, 13, 11
    x, w = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g)
    bias, res = torch.randn(N, generator=g), torch.randn(M, N, generator=g)
    nw, nb = torch.rand(N, generator=g) + 0.5, torch.randn(N, generator=g)
    schema_only = ("test_schema",)
    for precision in ("fp32", "bf16"):
        torch.library.opcheck(_k.linear_gemm.default, (x, w, precision), test_utils=schema_only)
        args = (x, w, bias, res, nw, nb, "layer", 1e-5, precision)
        preact = _k.linear_norm_composite_forward(*args)[1]
        torch.library.opcheck(
            _k.linear_norm_composite_forward.default, args, test_utils=schema_only
        )
        grad = torch.randn(M, N, generator=g)
        torch.library.opcheck(
            _k.linear_norm_composite_backward.default, (grad, *args, preact), test_utils=schema_only
        )
