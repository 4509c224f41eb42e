"""Plain-torch twins: the same model, the same weights, plain torch ops instead of recperf's.

Every recperf op a model calls sits in one of three modules: ``LinearNorm``,
``GroupedLinearNorm`` and ``FMInteraction``. Their plain counterparts below subclass them
and override only ``forward`` (F.linear / bmm + F.layer_norm, the textbook FM), so
:func:`torch_twin` copies a model and swaps those classes: parameters, names, hooks and
every other attribute stay as they were. The twin is what the equivalence tests compare
against and the baseline of the train-step benchmarks.

Recipes in the twin: "fp32" runs the GEMMs in fp32; every other recipe runs them in bf16
(plain torch has no FP8 training GEMM), so only fp32 and bf16 twins match exactly.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from recperf.nn import FMInteraction, GroupedLinearNorm, LinearNorm


def _gemm_dtype(recipe: str, x: torch.Tensor) -> torch.dtype:
    if x.dtype == torch.float64 or recipe == "fp32":
        return x.dtype
    return torch.bfloat16


def _norm(m, z: torch.Tensor, grouped: bool) -> torch.Tensor:
    n = (z.shape[-1],)
    if m.norm == "none":
        return z
    if not grouped:
        if m.norm == "layer":
            return F.layer_norm(z, n, m.norm_weight, m.norm_bias, m.eps)
        return F.rms_norm(z, n, m.norm_weight, m.eps)
    y = F.layer_norm(z, n, eps=m.eps) if m.norm == "layer" else F.rms_norm(z, n, eps=m.eps)
    if m.norm_weight is not None:
        y = y * m.norm_weight.unsqueeze(1)
    if m.norm_bias is not None:
        y = y + m.norm_bias.unsqueeze(1)
    return y


class PlainLinearNorm(LinearNorm):
    """LinearNorm as F.linear + F.layer_norm / F.rms_norm."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        dt = _gemm_dtype(self.recipe, x)
        z = F.linear(x.to(dt), self.weight.to(dt)).to(x.dtype)
        if self.bias is not None:
            z = z + self.bias
        if residual is not None:
            z = z + residual
        return _norm(self, z, grouped=False)


class PlainGroupedLinearNorm(GroupedLinearNorm):
    """GroupedLinearNorm as one torch.bmm + a norm."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        dt = _gemm_dtype(self.recipe, x)
        z = torch.bmm(x.to(dt), self.weight.to(dt).transpose(1, 2)).to(x.dtype)
        if self.bias is not None:
            z = z + self.bias.unsqueeze(1)
        if residual is not None:
            z = z + residual
        return _norm(self, z, grouped=True)


class PlainFMInteraction(FMInteraction):
    """FMInteraction as torch.bmm (+ F.layer_norm); pairwise through the full x . x^T."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pairwise":
            n = self.num_features
            i, j = torch.triu_indices(n, n, 0 if self.include_self else 1, device=x.device)
            return torch.bmm(x, x.transpose(1, 2))[:, i, j]
        f = torch.bmm(x, x.transpose(1, 2) @ self.proj.to(x.dtype))
        if self.mode == "projected":
            return f
        f = f.flatten(1)
        return F.layer_norm(f, (f.shape[1],), self.weight, self.bias, self.eps)


PLAIN = {
    LinearNorm: PlainLinearNorm,
    GroupedLinearNorm: PlainGroupedLinearNorm,
    FMInteraction: PlainFMInteraction,
}


def torch_twin(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose recperf modules compute with plain torch ops."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        plain = PLAIN.get(type(module))
        if plain is not None:
            module.__class__ = plain  # forward is the only difference (module docstring)
    return twin


def is_twin(model: nn.Module) -> bool:
    return any(type(m) in PLAIN.values() for m in model.modules())


def set_recipe(model: nn.Module, recipe: str) -> None:
    """Switch every LinearNorm / GroupedLinearNorm of ``model`` to ``recipe``."""
    for m in model.modules():
        if isinstance(m, LinearNorm | GroupedLinearNorm):
            m.recipe = recipe


def set_backend(model: nn.Module, backend: str) -> None:
    """Pass ``backend`` to every recperf op of ``model`` ("auto": the dispatcher's choice)."""
    for m in model.modules():
        if isinstance(m, LinearNorm | GroupedLinearNorm | FMInteraction):
            m.backend = backend
