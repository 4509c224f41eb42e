"""recperf.nn.LinearNorm and GroupedLinearNorm: drop-in equivalence with nn.Linear + a
norm, switching the recipe after construction, grouped parameters, and errors."""

from __future__ import annotations

import pytest
import torch
from numerics import assert_close, rel_err
from torch import nn

from recperf.nn import GroupedLinearNorm, LinearNorm


@pytest.mark.parametrize(
    "norm", [nn.LayerNorm(24), nn.RMSNorm(24, eps=1e-6), None], ids=["layer", "rms", "none"]
)
def test_from_modules_matches_torch(norm):
    torch.manual_seed(0)
    linear = nn.Linear(40, 24)
    if norm is not None:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
    module = LinearNorm.from_modules(linear, norm, recipe="fp32")
    x = torch.randn(3, 7, 40, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    ref = linear(xr) if norm is None else norm(linear(xr))
    y = module(x)
    assert_close(y, ref, torch.float32, "forward")
    y.square().sum().backward()
    ref.square().sum().backward()
    assert_close(x.grad, xr.grad, torch.float32, "grad x", 2e-5)
    assert_close(module.weight.grad, linear.weight.grad, torch.float32, "grad weight", 2e-5)


def test_recipe_switches_after_construction():
    torch.manual_seed(1)
    module = LinearNorm(64, 32)
    x = torch.randn(16, 64)
    exact = module(x).detach()
    module.recipe = "fp8_rowwise"
    fp8 = module(x)
    assert 0 < rel_err(fp8, exact) < 0.06
    assert "fp8_rowwise" in repr(module)
    with pytest.raises(ValueError, match="recipe must be one of"):
        module.recipe = "int4"


def test_residual_and_parameters():
    module = LinearNorm(8, 6, bias=False, norm="rms", recipe="fp32")
    assert {n for n, _ in module.named_parameters()} == {"weight", "norm_weight"}
    x, residual = torch.randn(5, 8), torch.randn(5, 6)
    with_res = module(x, residual)
    manual = module.norm_weight * torch.nn.functional.rms_norm(
        x @ module.weight.t() + residual, (6,), eps=1e-5
    )
    assert_close(with_res, manual.detach(), torch.float32, "residual")


def test_grouped_matches_separate_layers():
    torch.manual_seed(2)
    grouped = GroupedLinearNorm(3, 16, 8, recipe="fp32")
    x = torch.randn(3, 5, 16)
    y = grouped(x)
    for g in range(3):
        single = LinearNorm(16, 8, recipe="fp32")
        with torch.no_grad():
            for name in ("weight", "bias", "norm_weight", "norm_bias"):
                getattr(single, name).copy_(getattr(grouped, name)[g])
        assert_close(y[g], single(x[g]).detach(), torch.float32, f"group {g}")
    assert grouped.weight.shape == (3, 8, 16) and "groups=3" in repr(grouped)


@pytest.mark.parametrize(
    "factory,pattern",
    [
        (lambda: LinearNorm(0, 4), "in_features must be a positive int"),
        (lambda: LinearNorm(4, 4, norm="group"), "norm must be one of"),
        (lambda: LinearNorm(4, 4, recipe="fp16"), "recipe must be one of"),
        (lambda: GroupedLinearNorm(0, 4, 4), "groups must be a positive int"),
    ],
)
def test_bad_arguments(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_from_modules_rejects_other_norms():
    with pytest.raises(TypeError, match=r"norm must be nn\.LayerNorm, nn\.RMSNorm or None"):
        LinearNorm.from_modules(nn.Linear(4, 4), nn.BatchNorm1d(4))
