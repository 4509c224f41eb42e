"""The layers LoKA probes and plans: every ``recperf.nn.LinearNorm``, ``GroupedLinearNorm``
and plain ``nn.Linear`` of a model, by module name.

An ``nn.Linear`` subclass is left out on purpose: such classes (for instance the output
projection of ``nn.MultiheadAttention``) are often used through their weights by a
parent that never calls them, so neither a hook nor a recipe would reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from recperf.nn import GroupedLinearNorm, LinearNorm

KINDS = ("linear_norm", "grouped_linear_norm", "linear")


@dataclass(frozen=True)
class Shape:
    """A layer's shape as the plan keys it: the rows M vary from batch to batch and
    are not part of it."""

    in_features: int
    out_features: int
    groups: int = 0  # 0: not grouped

    def as_dict(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "groups": self.groups,
        }

    def __str__(self) -> str:
        g = f"{self.groups}x" if self.groups else ""
        return f"{g}{self.in_features}->{self.out_features}"


@dataclass(frozen=True)
class Site:
    name: str
    module: nn.Module
    kind: str
    shape: Shape
    norm: str  # "layer", "rms" or "none" (nn.Linear: "none")

    @property
    def features(self) -> int:
        """Columns of the probe's [rows, features] view of this layer's inputs."""
        return self.shape.in_features * max(self.shape.groups, 1)

    @property
    def out_columns(self) -> int:
        return self.shape.out_features * max(self.shape.groups, 1)

    @property
    def pinned(self) -> str | None:
        """The recipe recperf.loka.mods.keep_bf16 pinned this layer to, if any."""
        return getattr(self.module, "_loka_pinned", None)


def site_of(name: str, module: nn.Module) -> Site | None:
    if isinstance(module, GroupedLinearNorm):
        shape = Shape(module.in_features, module.out_features, module.groups)
        return Site(name, module, "grouped_linear_norm", shape, module.norm)
    if isinstance(module, LinearNorm):
        shape = Shape(module.in_features, module.out_features)
        return Site(name, module, "linear_norm", shape, module.norm)
    if type(module) is nn.Linear:
        return Site(name, module, "linear", Shape(module.in_features, module.out_features), "none")
    return None


def find_sites(model: nn.Module) -> list[Site]:
    """The probed layers of model, in module order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sites = [site_of(name, m) for name, m in model.named_modules()]
    return [s for s in sites if s is not None]


def model_name(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"
