"""Error of a candidate's output against the fp32 reference, three ways (float64 math).

- rel_fro: ||out - ref||_F / ||ref||_F; what the plan's budget bounds;
- sqnr_db: 20 log10(||ref|| / ||out - ref||), the FP8 literature's measure (torchao);
  rel_fro = 10^(-sqnr_db / 20);
- mean_rel: mean over elements of |out - ref| / (|ref| + floor), floor = 1e-3 * rms(ref),
  so that elements of ref near zero do not turn rounding into an infinite error.

Any non-finite element of out makes every error infinite (and the SQNR -inf): a NaN
never passes a budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MEAN_REL_FLOOR = 1e-3


@dataclass(frozen=True)
class Errors:
    rel_fro: float
    sqnr_db: float
    mean_rel: float

    def as_dict(self) -> dict:
        return {"rel_fro": self.rel_fro, "sqnr_db": self.sqnr_db, "mean_rel": self.mean_rel}

    @classmethod
    def from_dict(cls, d: dict) -> Errors:
        return cls(float(d["rel_fro"]), float(d["sqnr_db"]), float(d["mean_rel"]))

    @classmethod
    def worst(cls, *errors: Errors) -> Errors:
        return cls(
            max(e.rel_fro for e in errors),
            min(e.sqnr_db for e in errors),
            max(e.mean_rel for e in errors),
        )


INFINITE = Errors(math.inf, -math.inf, math.inf)


def errors(out: torch.Tensor, ref: torch.Tensor) -> Errors:
    if out.shape != ref.shape:
        raise ValueError(f"out must have ref's shape {tuple(ref.shape)}, got {tuple(out.shape)}")
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not bool(torch.isfinite(out).all()):
        return INFINITE
    diff = (out - ref).norm().item()
    norm = ref.norm().item()
    if diff == 0:
        return Errors(0.0, math.inf, 0.0)
    rel = diff / norm if norm > 0 else math.inf
    rms = norm / math.sqrt(max(ref.numel(), 1))
    floor = max(MEAN_REL_FLOOR * rms, torch.finfo(torch.float64).tiny)
    mean_rel = ((out - ref).abs() / (ref.abs() + floor)).mean().item()
    sqnr = 20 * math.log10(norm / diff) if norm > 0 else -math.inf
    return Errors(rel, sqnr, mean_rel)
