"""Precision recipes of linear_norm: how each of its three GEMMs is computed.

A linear layer runs three GEMMs per training step: the forward (y = x W^T, contracting
K), the data gradient (dx = dz W, contracting N) and the weight gradient (dW = dz^T x,
contracting M). A recipe fixes the precision of each; the caller's tensors may be fp32 or
bf16 whatever the recipe, and are cast or quantized inside. Every GEMM accumulates in
fp32, and the bias, residual and norm always run in fp32.

| recipe            | forward     | dgrad (dz . W) | wgrad (dz^T . x) |
|-------------------|-------------|----------------|------------------|
| fp32              | fp32        | fp32           | fp32             |
| bf16              | bf16        | bf16           | bf16             |
| fp8_tensorwise    | e4m3 x e4m3 | e5m2 x e4m3    | e5m2 x e4m3      |
| fp8_rowwise       | e4m3 x e4m3 | e5m2 x e4m3    | e5m2 x e4m3      |
| fp8_rowwise_gw_hp | e4m3 x e4m3 | e5m2 x e4m3    | bf16             |

Tensor-wise FP8 has one scale per operand. Row-wise FP8 has one scale per row of each
operand along its non-contracted dim: forward, x per row and W per output row; dgrad,
dz per row and W per input column; wgrad, dz per output column and x per input column
(the cast-transposed copies of quantize_fp8_transposed).

Gradients use e5m2 (wider range, fewer mantissa bits) because their dynamic range is
larger than that of activations and weights; ``fp8_rowwise_gw_hp`` keeps the weight
gradient, the GEMM most sensitive to FP8 error (it sums over the whole batch), in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2


@dataclass(frozen=True)
class GemmPrecision:
    """How one GEMM a [.., M, K] . b [.., N, K]^T is computed."""

    kind: str  # "fp32", "bf16" or "fp8"
    granularity: str | None = None  # fp8: "row" or "tensor"
    a_dtype: torch.dtype | None = None  # fp8 dtype of a
    b_dtype: torch.dtype | None = None  # fp8 dtype of b

    def __str__(self) -> str:
        if self.kind != "fp8":
            return self.kind
        names = {E4M3: "e4m3", E5M2: "e5m2"}
        return f"fp8 {names[self.a_dtype]}x{names[self.b_dtype]} {self.granularity}wise"


@dataclass(frozen=True)
class Recipe:
    name: str
    forward: GemmPrecision
    dgrad: GemmPrecision
    wgrad: GemmPrecision

    @property
    def uses_fp8(self) -> bool:
        return "fp8" in (self.forward.kind, self.dgrad.kind, self.wgrad.kind)


FP32 = GemmPrecision("fp32")
BF16 = GemmPrecision("bf16")


def _fp8(granularity: str, a_dtype: torch.dtype, b_dtype: torch.dtype) -> GemmPrecision:
    return GemmPrecision("fp8", granularity, a_dtype, b_dtype)


RECIPES = {
    "fp32": Recipe("fp32", FP32, FP32, FP32),
    "bf16": Recipe("bf16", BF16, BF16, BF16),
    "fp8_tensorwise": Recipe(
        "fp8_tensorwise",
        _fp8("tensor", E4M3, E4M3),
        _fp8("tensor", E5M2, E4M3),
        _fp8("tensor", E5M2, E4M3),
    ),
    "fp8_rowwise": Recipe(
        "fp8_rowwise", _fp8("row", E4M3, E4M3), _fp8("row", E5M2, E4M3), _fp8("row", E5M2, E4M3)
    ),
    "fp8_rowwise_gw_hp": Recipe(
        "fp8_rowwise_gw_hp", _fp8("row", E4M3, E4M3), _fp8("row", E5M2, E4M3), BF16
    ),
}

NORMS = ("layer", "rms", "none")


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {tuple(RECIPES)}, got {name!r}")
    return RECIPES[name]
