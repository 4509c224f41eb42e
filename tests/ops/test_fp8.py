"""quantize_fp8 (and its cast-transpose form) bit for bit against the reference on every
backend that runs here, over hard data; fp8_gemm against the reference; non-finite input;
errors; opcheck."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_backends
from hypothesis import given, settings
from hypothesis import strategies as st
from numerics import rel_err

import recperf
from recperf.ops.fp8_ref import fp8_gemm_ref, fp8_max, quantize_fp8_ref

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def hard_rows(M: int, K: int, seed: int) -> torch.Tensor:
    """Rows of every kind that trips quantizers: Gaussian, heavy-tailed, subnormal range
    (for both fp8 dtypes), huge (beyond the fp8 max), mixed magnitudes, all zero."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g)
    kinds = [
        lambda r: r,
        lambda r: r * torch.exp(3 * torch.randn(K, generator=g)),
        lambda r: r * 2.0**-16,
        lambda r: r * 2.0**-24,
        lambda r: r * 1e6,
        lambda r: r * torch.logspace(-12, 12, K)[torch.randperm(K, generator=g)],
        lambda r: r * 0,
    ]
    for i in range(M):
        x[i] = kinds[i % len(kinds)](x[i])
    return x


def assert_same_codes(q, s, ref_q, ref_s, what):
    assert q.dtype == ref_q.dtype and q.shape == ref_q.shape, what
    assert s.dtype == torch.float32 and s.shape == ref_s.shape, what
    bits, ref_bits = q.view(torch.uint8), ref_q.view(torch.uint8)
    both_nan = q.float().isnan() & ref_q.float().isnan()
    diff = ((bits != ref_bits) & ~both_nan).nonzero()
    assert len(diff) == 0, f"{what}: {len(diff)} codes differ, first at {diff[0].tolist()}"
    assert torch.equal(s.nan_to_num(-1.0), ref_s.nan_to_num(-1.0)), f"{what}: scales differ"


QUANT_SHAPES = [(1, 1), (7, 1), (1, 13), (37, 53), (16, 64)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("granularity", ["row", "tensor"])
@pytest.mark.parametrize("fp8_dtype", [E4M3, E5M2], ids=["e4m3", "e5m2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("backend", cpu_backends())
def test_quantize_bit_exact(backend, dtype, fp8_dtype, granularity, transposed):
    op = recperf.quantize_fp8_transposed if transposed else recperf.quantize_fp8
    for seed, (M, K) in enumerate(QUANT_SHAPES):
        x = hard_rows(M, K, seed).to(dtype)
        if dtype == torch.float16:
            x = x.clamp(-6e4, 6e4)  # fp16's own range
        q, s = op(x, granularity, fp8_dtype, backend=backend)
        ref_q, ref_s = quantize_fp8_ref(x.t() if transposed else x, granularity, fp8_dtype)
        assert_same_codes(q, s, ref_q, ref_s, f"{backend} {(M, K)}")
        assert q.is_contiguous()


@pytest.mark.parametrize("backend", cpu_backends())
def test_quantize_non_contiguous_input(backend):
    x = hard_rows(24, 40, 9).t()  # [40, 24], strides (1, 40)
    for op, src in ((recperf.quantize_fp8, x), (recperf.quantize_fp8_transposed, x.t())):
        q, s = op(x, "row", E4M3, backend=backend)
        assert_same_codes(q, s, *quantize_fp8_ref(src, "row", E4M3), f"{backend} strided")


def test_reference_contract():
    """The reference itself: amax maps to the max, zero rows get scale 1, x ~ q * scale."""
    x = hard_rows(14, 33, 1)
    for fp8_dtype in (E4M3, E5M2):
        q, s = quantize_fp8_ref(x, "row", fp8_dtype)
        nonzero = x.abs().amax(1) > 0
        assert torch.equal(
            q.float().abs().amax(1)[nonzero], torch.full((int(nonzero.sum()),), fp8_max(fp8_dtype))
        )
        assert torch.equal(s[~nonzero], torch.ones_like(s[~nonzero]))
        assert torch.equal(q.float()[~nonzero], torch.zeros_like(q.float()[~nonzero]))
        deq = q.float() * s
        bound = 2.0**-4 if fp8_dtype == E4M3 else 2.0**-3  # half an ulp, relative
        normal = q.float().abs() >= torch.finfo(fp8_dtype).smallest_normal
        assert ((deq - x).abs() <= bound * x.abs() + 1e-30)[normal].all()


@pytest.mark.parametrize("backend", cpu_backends())
def test_non_finite_rows_stay_local(backend):
    x = torch.randn(5, 16)
    x[1, 3] = float("inf")
    x[3, 7] = float("nan")
    q, s = recperf.quantize_fp8(x, "row", E4M3, backend=backend)
    assert s[1].isinf().all() and s[3].isnan().all()
    assert q[1, 3].float().isnan() and (q[1].float().nan_to_num(0) == 0).all()
    assert q[3].float().isnan().all()
    clean = [0, 2, 4]
    ref_q, ref_s = quantize_fp8_ref(x[clean], "row", E4M3)
    assert_same_codes(q[clean], s[clean], ref_q, ref_s, "the finite rows")
    _, st = recperf.quantize_fp8(x, "tensor", E4M3, backend=backend)
    assert st.isnan()  # the tensor holds a NaN: its one scale says so


def test_quantize_is_not_differentiable():
    x = torch.randn(4, 8, requires_grad=True)
    q, s = recperf.quantize_fp8(x)
    assert not q.requires_grad and not s.requires_grad


@pytest.mark.parametrize(
    "call,error,pattern",
    [
        (lambda: recperf.quantize_fp8(torch.randn(2, 3, 4)), ValueError, r"x must have rank 2"),
        (lambda: recperf.quantize_fp8(torch.randn(4, 0)), ValueError, r"x.shape\[1\] \(K\)"),
        (
            lambda: recperf.quantize_fp8(torch.randn(4, 4), "block"),
            ValueError,
            "granularity must be",
        ),
        (
            lambda: recperf.quantize_fp8(torch.randn(4, 4), "row", torch.int8),
            TypeError,
            "fp8_dtype must be",
        ),
        (
            lambda: recperf.quantize_fp8(torch.ones(4, 4, dtype=torch.int32)),
            TypeError,
            "x must have a floating dtype",
        ),
        (
            lambda: recperf.quantize_fp8(torch.ones(4, 4, dtype=torch.float64)),
            TypeError,
            "x must be float32",
        ),
    ],
)
def test_quantize_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# ------------------------------------------------------------------------------------
# fp8_gemm


def _operands(M, N, K, granularity, seed=0, a_dtype=E4M3, b_dtype=E4M3):
    g = torch.Generator().manual_seed(seed)
    a, sa = quantize_fp8_ref(torch.randn(M, K, generator=g), granularity, a_dtype)
    b, sb = quantize_fp8_ref(torch.randn(N, K, generator=g), granularity, b_dtype)
    return a, sa, b, sb, torch.randn(N, generator=g)


def fp8_gemm_backends() -> list[str]:
    return [b for b in cpu_backends() if b in ("torch", "triton")]


@pytest.mark.parametrize("granularity", ["row", "tensor"])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", fp8_gemm_backends())
def test_fp8_gemm(backend, out_dtype, granularity):
    for M, N, K in ((1, 1, 1), (7, 13, 37), (33, 20, 48)):
        a, sa, b, sb, bias = _operands(M, N, K, granularity, seed=M)
        out = recperf.fp8_gemm(a, sa, b, sb, bias, out_dtype, backend=backend)
        assert out.dtype == out_dtype and out.shape == (M, N)
        # float64 of the same arithmetic: the fp8 products are exact.
        ref = (a.double() @ b.double().t()) * (
            sa.double().reshape(-1, 1) if sa.dim() else sa.double()
        )
        ref = ref * (sb.double().reshape(1, -1) if sb.dim() else sb.double()) + bias.double()
        tol = 1e-6 if out_dtype == torch.float32 else 4e-3
        assert rel_err(out, ref) <= tol
        assert rel_err(fp8_gemm_ref(a, sa, b, sb, bias, out_dtype), ref) <= tol


def test_fp8_gemm_bias_gradient_and_mixed_dtypes():
    a, sa, b, sb, bias = _operands(6, 5, 16, "tensor", a_dtype=E5M2)
    bias.requires_grad_(True)
    out = recperf.fp8_gemm(a, sa, b, sb, bias, torch.float32)
    out.sum().backward()
    assert torch.equal(bias.grad, torch.full((5,), 6.0))


@pytest.mark.parametrize(
    "args,error,pattern",
    [
        (lambda a, sa, b, sb: (a.float(), sa, b, sb), TypeError, "a must be float8"),
        (lambda a, sa, b, sb: (a, sa, b[:, :8], sb), ValueError, r"b.shape\[1\] must be 16"),
        (lambda a, sa, b, sb: (a, sa.double(), b, sb), TypeError, "a_scale must be float32"),
        (
            lambda a, sa, b, sb: (a, sa[:3], b, sb),
            ValueError,
            r"a_scale must have shape \(\) .* or \(6, 1\)",
        ),
    ],
)
def test_fp8_gemm_errors(args, error, pattern):
    a, sa, b, sb, _ = _operands(6, 5, 16, "row")
    with pytest.raises(error, match=pattern):
        recperf.fp8_gemm(*args(a, sa, b, sb))


def test_opcheck_fp8_ops():
    x = torch.randn(6, 16, requires_grad=True)
    for op in (
        torch.ops.recperf.quantize_fp8.default,
        torch.ops.recperf.quantize_fp8_transposed.default,
    ):
        torch.library.opcheck(op, (x, "row", E5M2))
        torch.library.opcheck(op, (x, "tensor"))
    a, sa, b, sb, bias = _operands(6, 5, 16, "row")
    # opcheck's schema test compares inputs with allclose, which has no fp8 kernel on CPU.
    torch.library.opcheck(
        torch.ops.recperf.fp8_gemm.default,
        (a, sa, b, sb, bias.requires_grad_(True), torch.float32),
        test_utils=("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


# ------------------------------------------------------------------------------------
# property: any shape, any magnitude, the compiled kernel and the reference agree


@settings(max_examples=60, deadline=None)
@given(
    M=st.integers(1, 40),
    K=st.integers(1, 70),
    log_scale=st.floats(-30, 30),
    granularity=st.sampled_from(["row", "tensor"]),
    fp8_dtype=st.sampled_from([E4M3, E5M2]),
    transposed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_quantize_property(M, K, log_scale, granularity, fp8_dtype, transposed, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g) * torch.exp(torch.randn(M, K, generator=g)) * 2.0**log_scale
    op = recperf.quantize_fp8_transposed if transposed else recperf.quantize_fp8
    q, s = op(x, granularity, fp8_dtype, backend="cpp")
    ref = quantize_fp8_ref(x.t() if transposed else x, granularity, fp8_dtype)
    assert_same_codes(q, s, *ref, f"{(M, K)} 2^{log_scale:.1f}")
