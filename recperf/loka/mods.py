"""Model adaptations that make more layers FP8-safe or cheaper. Each takes a model,
changes it in place and returns it, and says exactly what it changes.

- ``fold_biases``: exact. A bias b added just before a LayerNorm only matters through
  b - mean(b): LayerNorm subtracts each row's mean, and a constant added to every feature
  of a row moves that mean by the same constant. So each LinearNorm with norm="layer"
  keeps only the mean-free part of its bias, and loses the bias when that part is zero
  (up to the rounding of the mean: 8 ulps of the bias' largest element).
  Nothing else is exact: an RMSNorm does not subtract the mean, and a bias followed by no
  norm reaches the output. (Besides this, in an nn.Sequential, a bias of a layer followed
  directly by a linear layer folds into that layer's bias: W2 (W1 x + b1) + b2 = W2 W1 x
  + (W2 b1 + b2); also exact, and done here.)
- ``drop_biases``: the no-bias model, for training from scratch: every LinearNorm and
  nn.Linear loses its bias (the function changes; the norm's own bias stays).
- ``blockwise_norm``: every nn.LayerNorm over d features becomes a BlockLayerNorm that
  normalizes each block of ``block`` consecutive features on its own (same affine
  parameters): one channel of large scale then only flattens its own block, and the next
  layer's rows keep a narrower dynamic range. LinearNorm's fused norm is left alone.
- ``hardswish``: every nn.SiLU becomes nn.Hardswish (piecewise polynomial, exactly 0
  below -3 and the identity above 3; cheaper, and no long smooth tail).
  Only modules are replaced: a model calling F.silu directly is not changed.
- ``keep_bf16``: pins chosen layers ("first", "last", or names of probed layers) to bf16:
  the recipe is set now, the planner gives them bf16, and apply keeps it.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from recperf.loka.sites import find_sites
from recperf.nn import GroupedLinearNorm, LinearNorm


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _is_linear(m: nn.Module) -> bool:
    return type(m) is nn.Linear or (isinstance(m, LinearNorm) and m.norm == "none")


def fold_biases(model: nn.Module) -> nn.Module:
    """The exact bias folds of the module docstring; the output is unchanged up to
    rounding."""
    _check_model(model)
    with torch.no_grad():
        for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
            layers = list(seq)
            for first, second in itertools.pairwise(layers):
                if _is_linear(first) and _is_linear(second) and first.bias is not None:
                    b2 = second.weight @ first.bias
                    if second.bias is None:
                        second.bias = nn.Parameter(b2)
                    else:
                        second.bias += b2
                    first.bias = None
        for m in model.modules():
            if isinstance(m, LinearNorm | GroupedLinearNorm) and m.norm == "layer":
                if m.bias is None:
                    continue
                scale = m.bias.abs().amax()
                m.bias -= m.bias.mean(-1, keepdim=True)
                # a constant bias leaves rounding residue of the mean: still zero
                if bool(m.bias.abs().amax() <= 8 * torch.finfo(m.bias.dtype).eps * scale):
                    m.bias = None
    return model


def drop_biases(model: nn.Module) -> nn.Module:
    """Every LinearNorm, GroupedLinearNorm and nn.Linear loses its bias."""
    _check_model(model)
    for m in model.modules():
        if isinstance(m, LinearNorm | GroupedLinearNorm | nn.Linear):
            m.bias = None
    return model


class BlockLayerNorm(nn.Module):
    """LayerNorm of each block of ``block`` consecutive features of the last dim, with
    one affine weight and bias over all d features (as nn.LayerNorm's)."""

    def __init__(
        self, features: int, block: int, eps: float = 1e-5, affine: bool = True, bias: bool = True
    ) -> None:
        super().__init__()
        if block < 1 or features % block:
            raise ValueError(f"block must divide features={features}, got {block!r}")
        self.features, self.block, self.eps = features, block, eps
        self.weight = nn.Parameter(torch.ones(features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(features)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.unflatten(-1, (self.features // self.block, self.block))
        y = nn.functional.layer_norm(blocks, (self.block,), eps=self.eps).flatten(-2)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.features}, block={self.block}, eps={self.eps}"


def _replace(model: nn.Module, match, make) -> int:
    """Replaces every child module for which match(m) holds by make(m); returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if match(child):
                setattr(parent, name, make(child))
                count += 1
    return count


def blockwise_norm(model: nn.Module, block: int = 32) -> nn.Module:
    """Every nn.LayerNorm over one dim d divisible by ``block`` (d > block) becomes a
    BlockLayerNorm with the same parameters."""
    _check_model(model)
    if not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")

    def match(m):
        shape = getattr(m, "normalized_shape", None)
        return (
            isinstance(m, nn.LayerNorm)
            and len(shape) == 1
            and shape[0] % block == 0
            and shape[0] > block
        )

    def make(m: nn.LayerNorm) -> BlockLayerNorm:
        new = BlockLayerNorm(
            m.normalized_shape[0], block, m.eps, m.weight is not None, m.bias is not None
        )
        new.weight, new.bias = m.weight, m.bias
        return new

    _replace(model, match, make)
    return model


def hardswish(model: nn.Module) -> nn.Module:
    """Every nn.SiLU module becomes nn.Hardswish."""
    _check_model(model)
    _replace(model, lambda m: isinstance(m, nn.SiLU), lambda m: nn.Hardswish())
    return model


def keep_bf16(model: nn.Module, layers=("first", "last")) -> nn.Module:
    """Pins the named probed layers ("first" and "last" name the first and last in
    module order) to bf16."""
    _check_model(model)
    if isinstance(layers, str):
        raise TypeError(f"layers must be a sequence of names, got the string {layers!r}")
    sites = find_sites(model)
    by_name = {s.name: s for s in sites}
    for wanted in layers:
        if wanted in ("first", "last") and sites:
            site = sites[0] if wanted == "first" else sites[-1]
        elif wanted in by_name:
            site = by_name[wanted]
        else:
            raise ValueError(
                f"layers must name probed layers or 'first' / 'last', got {wanted!r}; "
                f"layers: {list(by_name)}"
            )
        site.module._loka_pinned = "bf16"
        if hasattr(site.module, "recipe"):
            site.module.recipe = "bf16"
    return model
