"""linear_norm and grouped_linear_norm: forward and every gradient on every backend that
runs here, for every recipe and norm, against float64; FP8 recipes by SQNR; awkward
shapes; non-finite input; errors; opcheck; compile."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import cpu_backends
from numerics import assert_close, rel_err

import recperf
from recperf.ops.linear_norm_ref import linear_norm_ref
from recperf.ops.recipes import RECIPES

NORMS = ("layer", "rms", "none")
FP8_RECIPES = [r for r in RECIPES if r.startswith("fp8")]


def sqnr_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    err = rel_err(out, ref)
    return math.inf if err == 0 else -20 * math.log10(err)


def ln_backends() -> list[str]:
    return [b for b in cpu_backends() if b != "cpp" or _has_cpp()]


def _has_cpp() -> bool:
    impl = recperf.dispatch.implementations("linear_norm_fwd").get("cpp")
    return impl is not None and impl.available() is None


def make(M, K, N, norm, seed, dtype=torch.float32, params=True, grouped=0):
    g = torch.Generator().manual_seed(seed)
    lead = (grouped,) if grouped else ()

    def r(*s, scale=1.0):
        return (torch.randn(*lead, *s, generator=g) * scale).to(dtype)

    x = r(M, K)
    w = r(N, K, scale=K**-0.5)
    bias = r(N, scale=0.1) if params else None
    residual = r(M, N) if params else None
    nw = (1 + r(N, scale=0.1)) if params and norm != "none" else None
    nb = r(N, scale=0.1) if params and norm == "layer" else None
    return [x, w, bias, residual, nw, nb]


def run(op, tensors, norm, recipe, backend, grad):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    y = op(*leaves, norm=norm, eps=1e-5, recipe=recipe, backend=backend)
    y.backward(grad)
    return y, [t.grad if t is not None else None for t in leaves]


def exact(op, tensors, norm, grad):
    """float64 forward and gradients of the exact math (the fp32 recipe in float64)."""
    return run(
        op,
        [t.double() if t is not None else None for t in tensors],
        norm,
        "fp32",
        "torch",
        grad.double(),
    )


SHAPES = [(1, 16, 16), (7, 37, 29), (33, 48, 20)]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("backend", ln_backends())
def test_linear_norm(backend, recipe, norm):
    for i, (M, K, N) in enumerate(SHAPES):
        tensors = make(M, K, N, norm, seed=i, params=i != 0)
        grad = torch.randn(M, N, generator=torch.Generator().manual_seed(99))
        y, grads = run(recperf.linear_norm, tensors, norm, recipe, backend, grad)
        ref_y, ref_grads = exact(recperf.linear_norm, tensors, norm, grad)
        assert y.shape == (M, N) and y.dtype == torch.float32
        what = f"{backend} {recipe} {norm} {(M, K, N)}"
        if recipe == "fp32":
            assert_close(y, ref_y, torch.float32, what)
        elif recipe == "bf16":
            assert_close(y, ref_y, torch.bfloat16, what)
        else:  # e4m3 forward: >= 25 dB on Gaussian data (the bar)
            assert sqnr_db(y, ref_y) >= 25, f"{what}: forward SQNR {sqnr_db(y, ref_y):.1f} dB"
        for name, got, want in zip(
            ("x", "weight", "bias", "residual", "nw", "nb"), grads, ref_grads, strict=True
        ):
            if want is None:
                assert got is None
                continue
            if recipe == "fp32":
                assert_close(got, want, torch.float32, f"{what} grad {name}", 2e-5)
            elif recipe == "bf16":
                assert_close(got, want, torch.bfloat16, f"{what} grad {name}", 2e-2)
            else:  # e5m2 gradients: about 2 bits fewer than e4m3 (see test_fp8_backward_sqnr)
                assert sqnr_db(got, want) >= 15, (
                    f"{what}: grad {name} SQNR {sqnr_db(got, want):.1f} dB"
                )


@pytest.mark.parametrize("backend", [b for b in ln_backends() if b != "torch"])
@pytest.mark.parametrize("recipe", FP8_RECIPES)
def test_fp8_backends_reproduce_the_reference_recipe(backend, recipe):
    """Same codes as the torch backend: only the accumulation order may differ."""
    tensors = make(17, 40, 24, "layer", seed=5)
    grad = torch.randn(17, 24)
    y, grads = run(recperf.linear_norm, tensors, "layer", recipe, backend, grad)
    ref_y, ref_grads = run(recperf.linear_norm, tensors, "layer", recipe, "torch", grad)
    assert rel_err(y, ref_y) <= 1e-4
    for got, want in zip(grads, ref_grads, strict=True):
        assert rel_err(got, want) <= 2e-2  # a rare code flip in a quantized gradient


def test_fp8_backward_sqnr():
    """What the FP8 recipes reach on Gaussian data, M=K=N=256 (printed for the notes)."""
    tensors = make(256, 256, 256, "layer", seed=3)
    grad = torch.randn(256, 256)
    _, ref_grads = exact(recperf.linear_norm, tensors, "layer", grad)
    for recipe in FP8_RECIPES:
        _, grads = run(recperf.linear_norm, tensors, "layer", recipe, "torch", grad)
        dx, dw = sqnr_db(grads[0], ref_grads[0]), sqnr_db(grads[1], ref_grads[1])
        print(f"{recipe}: dx {dx:.1f} dB, dW {dw:.1f} dB")
        assert dx >= 20 and dw >= 20
        if recipe == "fp8_rowwise_gw_hp":
            assert dw >= 35  # bf16 weight gradient


@pytest.mark.parametrize("backend", ln_backends())
def test_awkward_layouts_and_batch_dims(backend):
    x = torch.randn(3, 5, 37).transpose(0, 1)  # [5, 3, 37], non-contiguous
    w = torch.randn(29, 37)
    residual = torch.randn(5, 3, 29)
    y = recperf.linear_norm(x, w, None, residual, norm="rms", recipe="fp32", backend=backend)
    ref = linear_norm_ref(x.reshape(15, 37).double(), w.double(), None, residual.reshape(15, 29).double(),
                          None, None, "rms", 1e-5, "fp32")  # fmt: skip
    assert y.shape == (5, 3, 29)
    assert_close(y.reshape(15, 29), ref, torch.float32, f"{backend} batch dims")


@pytest.mark.parametrize("backend", ln_backends())
def test_bf16_inputs(backend):
    tensors = make(9, 32, 24, "layer", seed=7, dtype=torch.bfloat16)
    tensors[1] = tensors[1].float()  # fp32 master weight with bf16 activations
    grad = torch.randn(9, 24).bfloat16()
    y, grads = run(recperf.linear_norm, tensors, "layer", "bf16", backend, grad)
    ref_y, ref_grads = exact(recperf.linear_norm, tensors, "layer", grad)
    assert y.dtype == torch.bfloat16 and grads[1].dtype == torch.float32
    assert_close(y, ref_y, torch.bfloat16, "bf16 forward", 2e-2)
    assert_close(grads[0], ref_grads[0], torch.bfloat16, "bf16 grad x", 3e-2)


@pytest.mark.parametrize("recipe", ["fp32", "fp8_rowwise", "fp8_tensorwise"])
@pytest.mark.parametrize("backend", ln_backends())
def test_non_finite_input_stays_visible(backend, recipe):
    x, w, *_ = make(6, 32, 16, "layer", seed=8)
    x[2, 5] = float("nan")
    y = recperf.linear_norm(x, w, recipe=recipe, backend=backend)
    assert y[2].isnan().all()
    if recipe == "fp8_tensorwise":
        assert y.isnan().all()  # one scale for the tensor: everything is visibly NaN
    else:
        rows = [0, 1, 3, 4, 5]  # untouched by row 2
        ref = recperf.linear_norm(x[rows], w, recipe=recipe, backend=backend)
        # Close, not bitwise equal: a BLAS may pick another kernel for 5 rows than for 6
        # (MKL does on AMD Zen 4), which moves the last bits.
        assert y[rows].isfinite().all()
        torch.testing.assert_close(y[rows], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ln_backends())
def test_grouped_equals_each_group(backend):
    tensors = make(9, 24, 16, "layer", seed=10, grouped=3)
    grad = torch.randn(3, 9, 16)
    for recipe in ("fp32", "fp8_rowwise", "fp8_tensorwise"):
        y, grads = run(recperf.grouped_linear_norm, tensors, "layer", recipe, backend, grad)
        assert y.shape == (3, 9, 16)
        for gi in range(3):
            part = [t[gi] for t in tensors]
            yg, gg = run(recperf.linear_norm, part, "layer", recipe, "torch", grad[gi])
            assert rel_err(y[gi], yg) <= 1e-4, f"{backend} {recipe} group {gi}"
            for got, want in zip(grads, gg, strict=True):
                assert rel_err(got[gi], want) <= 2e-2


def test_gradcheck_float64():
    tensors = [t.double().requires_grad_(True) for t in make(4, 6, 5, "layer", seed=11)]
    for norm in NORMS:
        args = (
            tensors
            if norm == "layer"
            else tensors[:4] + ([tensors[4], None] if norm == "rms" else [None, None])
        )
        assert torch.autograd.gradcheck(
            lambda *a, norm=norm: recperf.linear_norm(*a, norm=norm, recipe="fp32"),
            [a for a in args],
        )


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        (
            {"weight": torch.randn(8, 7)},
            ValueError,
            r"weight.shape\[-1\] must be x's in features K = 16",
        ),
        ({"bias": torch.randn(9)}, ValueError, r"bias must have shape \[N\] = \(8,\), got \(9,\)"),
        ({"residual": torch.randn(4, 9)}, ValueError, r"residual must have shape \[M, N\]"),
        ({"recipe": "fp4"}, ValueError, "recipe must be one of"),
        ({"norm": "batch"}, ValueError, "norm must be one of"),
        (
            {"norm": "none", "norm_weight": torch.ones(8)},
            ValueError,
            "must be None for norm='none'",
        ),
        (
            {"norm": "rms", "norm_bias": torch.ones(8)},
            ValueError,
            "norm_bias must be None for norm='rms'",
        ),
        ({"eps": float("nan")}, ValueError, "eps must be a finite number"),
        ({"x": torch.ones(4, 16, dtype=torch.int64)}, TypeError, "x must have a floating dtype"),
        ({"weight": torch.randn(8, 16).to("meta")}, ValueError, "weight must be on x's device"),
        ({"backend": "te"}, ValueError, "backend 'te' was forced"),
    ],
)
def test_errors(kwargs, error, pattern):
    args = {"x": torch.randn(4, 16), "weight": torch.randn(8, 16), **kwargs}
    with pytest.raises(error, match=pattern):
        torch.ops.recperf.linear_norm(**args)


def test_grouped_errors():
    with pytest.raises(ValueError, match=r"weight.shape\[0\] must be x's group count 3"):
        recperf.grouped_linear_norm(torch.randn(3, 4, 8), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"x must have rank 3 \(\[G, M, K\]\)"):
        recperf.grouped_linear_norm(torch.randn(4, 8), torch.randn(5, 8))


@pytest.mark.parametrize("recipe", ["fp32", "bf16", "fp8_rowwise"])
def test_opcheck(recipe):
    t = [x.requires_grad_(True) for x in make(5, 16, 8, "layer", seed=12)]
    torch.library.opcheck(torch.ops.recperf.linear_norm.default, (*t, "layer", 1e-5, recipe))
    g = [x.requires_grad_(True) for x in make(5, 16, 8, "rms", seed=13, grouped=2) if x is not None]
    torch.library.opcheck(torch.ops.recperf.grouped_linear_norm.default,
                          (g[0], g[1], g[2], g[3], g[4], None, "rms", 1e-5, recipe))  # fmt: skip


def test_compile_fullgraph():
    torch._dynamo.reset()
    layer = recperf.nn.LinearNorm(16, 8, recipe="fp8_rowwise")
    grouped = recperf.nn.GroupedLinearNorm(2, 8, 8, norm="rms")
    model = lambda x: grouped(layer(x).expand(2, -1, -1)).sum()  # noqa: E731
    x = torch.randn(6, 16, requires_grad=True)
    xc = x.detach().clone().requires_grad_(True)
    compiled = torch.compile(model, fullgraph=True)
    eager, comp = model(x), compiled(xc)
    assert_close(comp, eager, torch.float32, "compiled forward", 1e-5)
    eager.backward()
    comp.backward()
    assert_close(xc.grad, x.grad, torch.float32, "compiled backward", 1e-5)


@pytest.mark.skipif("triton" not in cpu_backends(), reason="needs Triton's interpreter")
def test_environment_forces_triton_for_every_op_and_the_backward(monkeypatch):
    """RECPERF_BACKEND=triton runs all four ops, each recipe and the backward on Triton."""
    import importlib

    calls = set()
    for module_name in ("fp8", "linear_norm"):
        module = importlib.import_module(f"recperf.kernels.{module_name}")
        for name in (
            "quantize_fp8",
            "fp8_gemm",
            *(f"{p}linear_norm_{d}" for p in ("", "grouped_") for d in ("fwd", "bwd")),
        ):
            if hasattr(module, name):
                real = getattr(module, name)
                monkeypatch.setattr(
                    module, name, lambda *a, _r=real, _n=name: calls.add(_n) or _r(*a)
                )
    monkeypatch.setenv("RECPERF_BACKEND", "triton")
    x, w = torch.randn(5, 32, requires_grad=True), torch.randn(16, 32, requires_grad=True)
    for recipe in RECIPES:
        recperf.linear_norm(x, w, recipe=recipe).sum().backward()
    recperf.grouped_linear_norm(
        x.detach().expand(2, 5, 32).clone().requires_grad_(True),
        w.detach().expand(2, 16, 32).clone(),
    ).sum().backward()
    q, s = recperf.quantize_fp8(x.detach())
    recperf.fp8_gemm(q, s, q, s)
    assert calls == {
        "quantize_fp8",
        "fp8_gemm",
        "linear_norm_fwd",
        "linear_norm_bwd",
        "grouped_linear_norm_fwd",
        "grouped_linear_norm_bwd",
    }
