"""LinearNorm and GroupedLinearNorm: a linear layer and the norm after it in one op.

``LinearNorm(in, out, norm="layer")`` computes Norm(x W^T + b + residual) with the
precision ``recipe`` (recperf.ops.recipes); ``recipe`` and ``backend`` are plain
attributes, so LoKA (or anyone) can switch them after construction. Parameter layout and
initialisation follow ``nn.Linear`` and ``nn.LayerNorm`` / ``nn.RMSNorm``, so a
``nn.Linear`` + norm pair converts with ``LinearNorm.from_modules``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recperf.ops._checks import checked_types
from recperf.ops.linear_norm import grouped_linear_norm, linear_norm
from recperf.ops.recipes import NORMS, recipe


def _check(in_features, out_features, norm, recipe_name) -> None:
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    recipe(recipe_name)


class _LinearNormBase(nn.Module):
    _op = staticmethod(linear_norm)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self._op(
            x,
            self.weight,
            self.bias,
            residual,
            self.norm_weight,
            self.norm_bias,
            self.norm,
            self.eps,
            self.recipe,
            self.backend,
        )

    def _init_params(self, lead, in_features, out_features, bias, norm, affine, factory):
        self.weight = nn.Parameter(torch.empty(*lead, out_features, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(*lead, out_features, **factory)) if bias else None
        has_weight = norm != "none" and affine
        self.norm_weight = (
            nn.Parameter(torch.ones(*lead, out_features, **factory)) if has_weight else None
        )
        self.norm_bias = (
            nn.Parameter(torch.zeros(*lead, out_features, **factory))
            if has_weight and norm == "layer"
            else None
        )

    def reset_parameters(self) -> None:
        # nn.Linear's initialisation, per output matrix.
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        if self.norm_weight is not None:
            nn.init.ones_(self.norm_weight)
        if self.norm_bias is not None:
            nn.init.zeros_(self.norm_bias)

    @property
    def recipe(self) -> str:
        return self._recipe

    @recipe.setter
    def recipe(self, name: str) -> None:
        recipe(name)
        self._recipe = name

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"norm={self.norm!r}, recipe={self.recipe!r}, backend={self.backend!r}"
        )


class LinearNorm(_LinearNormBase):
    """Norm(x . W^T + bias + residual) over the last dim: x [.., in_features] ->
    [.., out_features]. ``norm`` in {"layer", "rms", "none"}; ``elementwise_affine``
    gives the norm its weight (and, for LayerNorm, bias)."""

    @checked_types
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        norm: str = "layer",
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        recipe: str = "bf16",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check(in_features, out_features, norm, recipe)
        self.in_features, self.out_features = in_features, out_features
        self.norm, self.eps, self.recipe, self.backend = norm, eps, recipe, backend
        factory = {"device": device, "dtype": dtype}
        self._init_params((), in_features, out_features, bias, norm, elementwise_affine, factory)
        self.reset_parameters()

    @classmethod
    def from_modules(
        cls, linear: nn.Linear, norm: nn.Module | None = None, recipe: str = "bf16"
    ) -> LinearNorm:
        """A LinearNorm with the parameters of ``linear`` followed by ``norm``
        (nn.LayerNorm, nn.RMSNorm, or None / nn.Identity for no norm)."""
        if norm is None or isinstance(norm, nn.Identity):
            kind, eps, nw, nb = "none", 1e-5, None, None
        elif isinstance(norm, nn.LayerNorm):
            kind, eps, nw, nb = "layer", norm.eps, norm.weight, norm.bias
        elif isinstance(norm, nn.RMSNorm):
            kind, eps, nw, nb = "rms", norm.eps or 1e-5, norm.weight, None
        else:
            raise TypeError(
                f"norm must be nn.LayerNorm, nn.RMSNorm or None, got {type(norm).__name__}"
            )
        module = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            norm=kind,
            eps=eps,
            elementwise_affine=nw is not None,
            recipe=recipe,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            for mine, theirs in (
                (module.weight, linear.weight),
                (module.bias, linear.bias),
                (module.norm_weight, nw),
                (module.norm_bias, nb),
            ):
                if mine is not None and theirs is not None:
                    mine.copy_(theirs)
        return module


class GroupedLinearNorm(_LinearNormBase):
    """G independent LinearNorms (towers, ensemble members) run as one op: x [G, M,
    in_features] -> [G, M, out_features], each group with its own parameters."""

    _op = staticmethod(grouped_linear_norm)

    @checked_types
    def __init__(
        self,
        groups: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        norm: str = "layer",
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        recipe: str = "bf16",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}")
        _check(in_features, out_features, norm, recipe)
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.norm, self.eps, self.recipe, self.backend = norm, eps, recipe, backend
        factory = {"device": device, "dtype": dtype}
        self._init_params(
            (groups,), in_features, out_features, bias, norm, elementwise_affine, factory
        )
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"groups={self.groups}, " + super().extra_repr()
