"""Which (recipe, backend) pairs a layer could run: the candidates of its replay.

Recipes: every reduced-precision recipe (fp32 is the reference the errors are measured
against, not a candidate). Backends: those whose forward and backward kernels both accept
the layer's inputs, asked through the dispatcher's own ``not_supported_reasons``.

- On the current device, a backend must run here. Triton on CPU tensors (its
  interpreter) is for tests and never timed, as in ``recperf bench``.
- For a target GPU planned from another machine, what the target will have built cannot
  be asked here, so a backend's availability is assumed and only its device, dtype and
  shape limits are checked, for CUDA tensors in the target's activation dtype. The
  target has recperf's CUDA kernels and Triton (TARGET_BACKENDS); Transformer Engine's
  adapter is untested (recperf.ops.thirdparty) and is never planned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recperf import dispatch
from recperf.loka.sites import Site

CANDIDATE_RECIPES = ("bf16", "fp8_tensorwise", "fp8_rowwise", "fp8_rowwise_gw_hp")
TARGET_BACKENDS = ("triton", "cuda", "torch", "torchao")


@dataclass(frozen=True, order=True)
class Candidate:
    recipe: str
    backend: str

    def __str__(self) -> str:
        return f"{self.recipe}/{self.backend}"


def _op(site: Site) -> str:
    return "grouped_linear_norm" if site.kind == "grouped_linear_norm" else "linear_norm"


def _inputs(site: Site, rows: int, recipe: str, device, dtype) -> dispatch.Inputs:
    shape = {"M": rows, "K": site.shape.in_features, "N": site.shape.out_features}
    if site.shape.groups:
        shape["G"] = site.shape.groups
    options = {"recipe": recipe, "norm": site.norm, "weight_dtype": dtype}
    return dispatch.Inputs(torch.device(device), dtype, shape, options)


def candidates(
    site: Site, rows: int, device: str | torch.device, dtype: torch.dtype, for_target: bool
) -> tuple[list[Candidate], dict[Candidate, str]]:
    """(the candidates, in recipe then backend order; why each other pair declined)."""
    device = torch.device(device)
    backends = TARGET_BACKENDS if for_target else dispatch.BACKENDS
    chosen: list[Candidate] = []
    declined: dict[Candidate, str] = {}
    for recipe in CANDIDATE_RECIPES:
        for backend in backends:
            pair = Candidate(recipe, backend)
            if backend == "triton" and device.type == "cpu":
                declined[pair] = "the Triton interpreter is for tests, never timed"
                continue
            inputs = _inputs(site, max(rows, 1), recipe, device, dtype)
            reasons = []
            for kernel in (f"{_op(site)}_fwd", f"{_op(site)}_bwd"):
                impl = dispatch.implementations(kernel).get(backend)
                if impl is None:
                    reasons.append(f"no {kernel} implementation")
                    break
                reasons += impl.not_supported_reasons(inputs, check_available=not for_target)
            if reasons:
                declined[pair] = "; ".join(dict.fromkeys(reasons))
            else:
                chosen.append(pair)
    return chosen, declined
