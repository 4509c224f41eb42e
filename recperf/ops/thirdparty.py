"""Third-party comparison backends of linear_norm, used only when importable; nothing in
recperf depends on them. Each is a thin adapter: the third party's FP8 linear, then our
reference bias + residual + norm in fp32; the backward recomputes the forward under
autograd and asks for the gradients.

- ``torchao``: torchao.float8's training matmul (Float8LinearConfig from the recipe name;
  the backend serves "tensorwise", see TORCHAO_BACKEND_RECIPES). Its numerics differ from recperf's
  recipes on purpose: torchao's row-wise recipes keep gradients in e4m3 and round scales
  to powers of two. On CPU tensors it runs in torchao's emulation mode (tests).
- ``te``: Transformer Engine's te.Linear under fp8_autocast (delayed/current scaling as TE
  chooses). TE is not installable on our machines: this adapter is UNTESTED. (TE's fused
  LayerNormLinear normalizes before its GEMM, the opposite order of linear_norm, so the
  adapter uses te.Linear and leaves the norm to us.)
"""

from __future__ import annotations

import importlib.util

import torch

from recperf import dispatch
from recperf.ops._checks import KERNEL_DTYPES
from recperf.ops.linear_norm_ref import _norm

TORCHAO_RECIPES = {
    "fp8_tensorwise": "tensorwise",
    "fp8_rowwise": "rowwise",
    "fp8_rowwise_gw_hp": "rowwise_with_gw_hp",
}
# torchao 0.18's row-wise (axiswise) casts reject aten.reshape when called inside a
# custom op's kernel, below the autograd dispatch key: as a backend, torchao serves the
# tensor-wise recipe; `recperf bench` times all three recipes with torchao's own
# Float8Linear as baselines instead.
TORCHAO_BACKEND_RECIPES = ("fp8_tensorwise",)


def _missing(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


def _recipe_reason(inputs: dispatch.Inputs, supported=tuple(TORCHAO_RECIPES)) -> str | None:
    name = inputs.options.get("recipe")
    if name not in supported:
        return f"recipe {name!r} is not supported here (only {list(supported)})"
    return None


def _finish(z, x, bias, residual, norm_weight, norm_bias, norm, eps):
    z = z.float()
    if bias is not None:
        z = z + bias.float()
    if residual is not None:
        z = z + residual.float()
    return _norm(z, norm, norm_weight, norm_bias, eps)[0].to(x.dtype)


def _torchao_matmul(x, weight, recipe_name):
    from torchao.float8.config import Float8LinearConfig
    from torchao.float8.float8_linear import LinearMMConfig, ScaledMMConfig
    from torchao.float8.float8_linear import matmul_with_hp_or_float8_args as matmul

    config = Float8LinearConfig.from_recipe_name(TORCHAO_RECIPES[recipe_name])
    emulate = x.device.type != "cuda"
    if emulate:
        config = Float8LinearConfig(**{**config.__dict__, "emulate": True})
    mm = LinearMMConfig(
        ScaledMMConfig(emulate, config.gemm_config_output.use_fast_accum, False, False),
        ScaledMMConfig(emulate, config.gemm_config_grad_input.use_fast_accum, False, False),
        ScaledMMConfig(emulate, config.gemm_config_grad_weight.use_fast_accum, False, False),
    )
    return matmul.apply(x, weight.t(), mm, config)


def torchao_fwd(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
    z = _torchao_matmul(x, weight.to(x.dtype), recipe_name)
    return _finish(z, x, bias, residual, norm_weight, norm_bias, norm, eps)


def _te_fwd_impl(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
    import transformer_engine.pytorch as te

    linear = te.Linear(weight.shape[1], weight.shape[0], bias=False, params_dtype=x.dtype)
    linear.weight = torch.nn.Parameter(weight.to(x.dtype), requires_grad=weight.requires_grad)
    with te.fp8_autocast(enabled=True):
        z = linear(x)
    return _finish(z, x, bias, residual, norm_weight, norm_bias, norm, eps)


def _backward_by_autograd(forward):
    """A kernel-level backward from a forward: recompute under autograd, then grad."""

    def backward(grad, x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe_name):
        inputs = [x, weight, bias, residual, norm_weight, norm_bias]
        leaves = [t.detach().requires_grad_(True) if t is not None else None for t in inputs]
        with torch.enable_grad():
            y = forward(*leaves, norm, eps, recipe_name)
            present = [t for t in leaves if t is not None]
            grads = iter(torch.autograd.grad(y, present, grad, allow_unused=True))
        out = []
        for t in leaves:
            if t is None:
                out.append(x.new_empty(0))
                continue
            g = next(grads)
            out.append(torch.zeros_like(t) if g is None else g.to(t.dtype))
        return tuple(out)

    return backward


for _name, _module, _fwd, _devices, _recipes in (
    ("torchao", "torchao", torchao_fwd, {"cpu", "cuda"}, TORCHAO_BACKEND_RECIPES),
    ("te", "transformer_engine", _te_fwd_impl, {"cuda"}, tuple(TORCHAO_RECIPES)),
):
    for _kernel, _fn in (
        ("linear_norm_fwd", _fwd),
        ("linear_norm_bwd", _backward_by_autograd(_fwd)),
    ):
        dispatch.register(
            dispatch.Implementation(
                kernel=_kernel,
                backend=_name,
                fn=_fn,
                devices=frozenset(_devices),
                dtypes=KERNEL_DTYPES,
                available=lambda module=_module: _missing(module),
                limits=lambda inputs, recipes=_recipes: _recipe_reason(inputs, recipes),
            )
        )
