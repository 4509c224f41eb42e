"""Comparison helpers: relative Frobenius error against a float64 reference, tolerances
that follow the dtype, and failure messages that show the worst element."""

from __future__ import annotations

import torch

# Relative Frobenius tolerance per output dtype: fp32 kernels accumulate in fp32 and
# land far under 1e-5; 16-bit outputs are bounded by their final rounding (about 2^-9
# for bf16) plus accumulation, and also by twice torch's own error in that dtype.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if out.shape != ref.shape:
        raise AssertionError(f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        return float("inf")  # NaN and inf never pass
    denom = ref.norm().item()
    diff = (out - ref).norm().item()
    return diff / denom if denom > 0 else diff


def worst(out: torch.Tensor, ref: torch.Tensor) -> str:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    diff = (out - ref).abs()
    diff = torch.where(torch.isfinite(diff), diff, torch.full_like(diff, float("inf")))
    idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    return f"worst at {idx}: got {out[idx].item():.6g}, expected {ref[idx].item():.6g}"


def assert_close(out, ref, dtype: torch.dtype, what: str, tol: float | None = None) -> None:
    tol = TOL[dtype] if tol is None else tol
    err = rel_err(out, ref)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}; {worst(out, ref)}"
