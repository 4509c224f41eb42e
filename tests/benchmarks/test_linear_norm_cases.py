"""The linear_norm benchmark cases are fair: each recipe's eager baseline is the code a
user writes in that precision, on the op's own tensors; FP8 on the CPU is flagged as an
emulation; a baseline row's floor uses its own precision's peak."""

from __future__ import annotations

import torch

from recperf.benchmarks import runner
from recperf.benchmarks.linear_norm_cases import LinearNormCase, default_cases
from recperf.benchmarks.roofline import Ceilings

CPU = torch.device("cpu")


def test_cpu_cases_run_each_recipe_in_its_own_precision():
    cases = default_cases(CPU)
    assert {c.recipe for c in cases} == {"fp32", "bf16", "fp8_rowwise"}
    for c in cases:
        assert c.dtype == (torch.float32 if c.recipe == "fp32" else torch.bfloat16), c.name
        assert c.emulated == c.recipe.startswith("fp8"), c.name
        assert ("not a speed claim" in c.name) == c.emulated
        assert c.baseline_compute_dtype == c.dtype


def test_eager_baseline_computes_in_the_inputs_dtype():
    for recipe, dtype, groups in (("fp32", torch.float32, 0), ("bf16", torch.bfloat16, 3)):
        case = LinearNormCase(8, 16, 12, recipe, dtype, "fwd", groups=groups)
        t = case.make_inputs(CPU)
        assert all(v.dtype == dtype for v in t.values())
        out = case.eager_fn()(t)
        assert out.dtype == dtype
        ref = case.reference(t)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        assert ((out.double() - ref).norm() / ref.norm()).item() < tol


def test_baseline_rows_get_their_own_precisions_floor(monkeypatch):
    """An FP8 case on bf16 tensors: the op's rows are bounded by the FP8 (here fp32,
    emulation) rate, the eager rows by the bf16 rate."""
    case = LinearNormCase(64, 64, 64, "fp8_rowwise", torch.bfloat16, "fwd", with_compile=False)
    ceilings = Ceilings("test", 1e15, 1e9, 4e9, "test")  # compute bound, bf16 4x fp32
    monkeypatch.setattr(case.__class__, "backends", lambda self, device: ["torch"])
    rows = {r.variant: r for r in runner.run_case(case, CPU, ceilings, repeats=1)}
    flops = case.work().flops
    assert rows["torch"].floor_ms == flops / 1e9 * 1e3
    assert rows["eager"].floor_ms == flops / 4e9 * 1e3
