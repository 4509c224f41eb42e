"""``plan(report, budget, min_speedup)``: the per-layer rule, and nothing else.

For each layer, with ``baseline`` the fastest bf16 candidate:

1. a layer that saw a NaN or an inf (inputs, weights or output gradients) gets bf16;
   so does one whose inputs the probe never recorded, one a mod pinned
   (recperf.loka.mods.keep_bf16), and one with no timed bf16 candidate (nothing to
   measure a speedup against);
2. otherwise the eligible candidates are those whose error (relative Frobenius, against
   fp32) is strictly below ``budget`` in every direction (forward, dgrad, wgrad; an
   unmeasured direction never is) and whose speedup, baseline time / candidate time over
   the three directions, is strictly above ``min_speedup``; the fastest eligible one wins;
3. no eligible candidate: bf16 (with the baseline's backend).

"Strictly below": a budget of 0 admits nothing, so it means all bf16. Ties (equal total
time, exactly) go to the smaller worst-direction error, then to the recipe earlier in
CANDIDATE_RECIPES (bf16, fp8_tensorwise, fp8_rowwise, fp8_rowwise_gw_hp), then to the
backend earlier in recperf.dispatch.BACKENDS: the same report always gives the same plan.
"""

from __future__ import annotations

import math

from recperf.dispatch import BACKENDS
from recperf.loka.candidates import CANDIDATE_RECIPES
from recperf.loka.dispatch_plan import DispatchPlan, LayerChoice
from recperf.loka.report import DIRECTIONS, CandidateResult, LayerReport, ProbeReport


def _order(c: CandidateResult) -> tuple:
    recipe = CANDIDATE_RECIPES.index(c.recipe) if c.recipe in CANDIDATE_RECIPES else 99
    backend = BACKENDS.index(c.backend) if c.backend in BACKENDS else 99
    return (c.total_s, c.max_error(), recipe, backend)


def _within(c: CandidateResult, budget: float) -> str | None:
    """None when every direction is strictly under budget, else why not."""
    for d in DIRECTIONS:
        e = c.errors.get(d)
        if e is None:
            return f"{d} error not measured"
        if not e.rel_fro < budget:
            return f"{d} error {e.rel_fro:.3g} >= budget {budget:g}"
    return None


def _choice(
    layer: LayerReport,
    c: CandidateResult | None,
    recipe: str,
    reason: str,
    baseline: CandidateResult | None,
) -> LayerChoice:
    speedup = None
    if c is not None and baseline is not None and c.total_s > 0:
        speedup = baseline.total_s / c.total_s
    errors = {}
    if c is not None:
        errors = {d: (e.rel_fro if e is not None else None) for d, e in c.errors.items()}
    return LayerChoice(
        name=layer.name,
        kind=layer.kind,
        shape=layer.shape,
        recipe=recipe,
        backend=c.backend if c is not None else "auto",
        reason=reason,
        speedup=speedup,
        errors=errors,
        time_s=c.total_s if c is not None else None,
    )


def choose(layer: LayerReport, budget: float, min_speedup: float) -> LayerChoice:
    """The rule of the module docstring for one layer."""
    timed_bf16 = [c for c in layer.candidates if c.recipe == "bf16" and c.times]
    baseline = min(timed_bf16, key=_order) if timed_bf16 else None

    def bf16(reason: str) -> LayerChoice:
        return _choice(layer, baseline, "bf16", reason, baseline)

    bad = {role: n for role, n in layer.nonfinite.items() if n}
    if bad:
        seen = ", ".join(f"{role}: {n}" for role, n in bad.items())
        return bf16(f"non-finite values seen ({seen}): never safe")
    if not layer.stats["x"].rows:
        return bf16("not observed: the probe recorded none of its inputs")
    if layer.pinned is not None:
        return bf16(f"pinned to {layer.pinned} by recperf.loka.mods.keep_bf16")
    if baseline is None:
        return bf16("no timed bf16 candidate: no speedup can be measured")
    eligible, why_not = [], {}
    for c in layer.candidates:
        if c.recipe == "bf16":
            continue
        reason = _within(c, budget)
        speedup = baseline.total_s / c.total_s if c.total_s > 0 else math.inf
        if reason is None and not speedup > min_speedup:
            reason = f"{speedup:.2f}x bf16 is not above {min_speedup:g}x"
        if reason is None:
            eligible.append(c)
        else:
            why_not.setdefault(c.recipe, f"{c.recipe}/{c.backend}: {reason}")
    if eligible:
        best = min(eligible, key=_order)
        speedup = baseline.total_s / best.total_s
        return _choice(
            layer,
            best,
            best.recipe,
            f"fastest within budget: {speedup:.2f}x bf16, worst error {best.max_error():.3g}",
            baseline,
        )
    if not why_not:
        return bf16("no reduced-precision candidate runs this layer")
    return bf16("no candidate within budget and faster: " + "; ".join(why_not.values()))


def plan(report: ProbeReport, budget: float = 0.1, min_speedup: float = 1.05) -> DispatchPlan:
    """The DispatchPlan of a replay report (the rule of the module docstring)."""
    if not isinstance(report, ProbeReport):
        raise TypeError(f"report must be a ProbeReport, got {type(report).__name__}")
    for name, value in (("budget", budget), ("min_speedup", min_speedup)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    layers = {layer.name: choose(layer, budget, min_speedup) for layer in report.layers}
    return DispatchPlan(
        model=report.model,
        layers=layers,
        budget=float(budget),
        min_speedup=float(min_speedup),
        target=report.target,
        timing=report.timing,
        device=report.device,
        versions=dict(report.versions),
    )
