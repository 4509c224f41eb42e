"""The planner's rule, with injected errors and timings: fastest eligible candidate,
ties, the threshold, an empty candidate set, budget zero, non-finite and pinned layers."""

from __future__ import annotations

import math

import pytest

from recperf.loka.errors import Errors
from recperf.loka.planner import plan
from recperf.loka.report import CandidateResult, LayerReport, ProbeReport
from recperf.loka.sites import Shape
from recperf.loka.tensor_stats import StatsSummary

SAME = object()  # the forward's error


def err(fwd, dgrad=SAME, wgrad=SAME) -> dict:
    """Errors per direction; None: not measured."""
    values = {
        "forward": fwd,
        "dgrad": fwd if dgrad is SAME else dgrad,
        "wgrad": fwd if wgrad is SAME else wgrad,
    }
    return {
        d: (None if v is None else Errors(v, -20 * math.log10(v) if v else math.inf, v))
        for d, v in values.items()
    }


def cand(recipe, backend, seconds, errors) -> CandidateResult:
    third = seconds / 3
    return CandidateResult(
        recipe, backend, errors, {"forward": third, "dgrad": third, "wgrad": third}
    )


def stats(nan=0, inf=0, rows=10) -> StatsSummary:
    q = {"p50": 1.0, "p99": 2.0, "p99.9": 3.0, "p99.99": 4.0}
    return StatsSummary(rows, 4, nan, inf, 4.0, 0.0, 1.0, 0.0, 0.0, q, 0.0, 6.0)


def layer(name, candidates, pinned=None, x=None) -> LayerReport:
    roles = {"x": x or stats(), "weight": stats(), "grad": stats()}
    return LayerReport(
        name, "linear_norm", Shape(4, 4), "layer", 8, roles, candidates, pinned=pinned
    )


def report(*layers) -> ProbeReport:
    return ProbeReport(
        "tests.Model", list(layers), "h100", "injected", "cpu", {"torch": "x", "recperf": "y"}
    )


def choose(layer_report, budget=0.1, min_speedup=1.05):
    return plan(report(layer_report), budget, min_speedup).layers[layer_report.name]


BASE = [cand("bf16", "triton", 10.0, err(0.002)), cand("bf16", "cuda", 12.0, err(0.002))]


def test_fastest_candidate_within_budget_wins():
    c = choose(
        layer(
            "l",
            [
                *BASE,
                cand("fp8_tensorwise", "triton", 4.0, err(0.3)),  # fastest, over budget
                cand("fp8_rowwise", "cuda", 6.0, err(0.05)),
                cand("fp8_rowwise", "triton", 5.0, err(0.05)),
                cand("fp8_rowwise_gw_hp", "triton", 5.5, err(0.05, wgrad=0.01)),
            ],
        )
    )
    assert (c.recipe, c.backend) == ("fp8_rowwise", "triton")
    assert c.speedup == pytest.approx(10.0 / 5.0)  # over the fastest bf16
    assert c.errors == {"forward": 0.05, "dgrad": 0.05, "wgrad": 0.05}


def test_only_wgrad_unsafe_gives_the_gw_hp_recipe():
    c = choose(
        layer(
            "l",
            [
                *BASE,
                cand("fp8_rowwise", "triton", 5.0, err(0.05, wgrad=0.2)),
                cand("fp8_rowwise_gw_hp", "triton", 6.0, err(0.05, wgrad=0.01)),
            ],
        )
    )
    assert (c.recipe, c.backend) == ("fp8_rowwise_gw_hp", "triton")


def test_ties_go_to_smaller_error_then_recipe_order_then_backend_order():
    by_error = choose(
        layer(
            "l",
            [
                *BASE,
                cand("fp8_rowwise", "triton", 5.0, err(0.06)),
                cand("fp8_tensorwise", "triton", 5.0, err(0.04)),
            ],
        )
    )
    assert by_error.recipe == "fp8_tensorwise"
    by_recipe = choose(
        layer(
            "l",
            [
                *BASE,
                cand("fp8_rowwise_gw_hp", "triton", 5.0, err(0.05)),
                cand("fp8_rowwise", "triton", 5.0, err(0.05)),
            ],
        )
    )
    assert by_recipe.recipe == "fp8_rowwise"  # earlier in CANDIDATE_RECIPES
    by_backend = choose(
        layer(
            "l",
            [
                *BASE,
                cand("fp8_rowwise", "cuda", 5.0, err(0.05)),
                cand("fp8_rowwise", "triton", 5.0, err(0.05)),
            ],
        )
    )
    assert by_backend.backend == "triton"  # earlier in dispatch.BACKENDS
    # the order the candidates arrive in does not matter
    flipped = choose(
        layer(
            "l",
            [
                cand("fp8_rowwise", "triton", 5.0, err(0.05)),
                cand("fp8_rowwise", "cuda", 5.0, err(0.05)),
                *reversed(BASE),
            ],
        )
    )
    assert (flipped.recipe, flipped.backend) == ("fp8_rowwise", "triton")


def test_speedup_must_exceed_the_threshold_strictly():
    at = choose(
        layer("l", [*BASE, cand("fp8_rowwise", "triton", 10.0 / 1.25, err(0.05))]), min_speedup=1.25
    )
    assert at.recipe == "bf16" and "not above 1.25x" in at.reason
    above = choose(
        layer("l", [*BASE, cand("fp8_rowwise", "triton", 7.9, err(0.05))]), min_speedup=1.25
    )
    assert above.recipe == "fp8_rowwise"


def test_empty_candidate_set_and_no_baseline_give_bf16():
    only_bf16 = choose(layer("l", list(BASE)))
    assert (only_bf16.recipe, only_bf16.backend) == ("bf16", "triton")
    assert "no reduced-precision candidate" in only_bf16.reason
    nothing = choose(layer("l", []))
    assert (nothing.recipe, nothing.backend) == ("bf16", "auto")
    assert "no timed bf16 candidate" in nothing.reason


def test_budget_zero_gives_all_bf16_even_for_exact_candidates():
    layers = [
        layer(f"l{i}", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(e))])
        for i, e in enumerate((0.0, 1e-9, 0.05))
    ]
    result = plan(report(*layers), budget=0.0)
    assert {c.recipe for c in result.layers.values()} == {"bf16"}


def test_an_unmeasured_direction_is_never_within_budget():
    c = choose(layer("l", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(0.01, wgrad=None))]))
    assert c.recipe == "bf16" and "wgrad error not measured" in c.reason


def test_nonfinite_layer_is_never_safe():
    c = choose(
        layer("l", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(0.01))], x=stats(nan=2, inf=1))
    )
    assert c.recipe == "bf16" and "non-finite values seen (x: 3)" in c.reason
    c = choose(layer("l", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(math.inf))]))
    assert c.recipe == "bf16"


def test_unobserved_layer_stays_bf16():
    c = choose(layer("l", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(0.01))], x=stats(rows=0)))
    assert c.recipe == "bf16" and "not observed" in c.reason


def test_pinned_layer_stays_bf16():
    c = choose(layer("l", [*BASE, cand("fp8_rowwise", "triton", 1.0, err(0.01))], pinned="bf16"))
    assert c.recipe == "bf16" and "pinned" in c.reason


def test_bad_arguments():
    with pytest.raises(TypeError, match="report must be a ProbeReport, got dict"):
        plan({})
    with pytest.raises(ValueError, match=r"budget must be a finite number >= 0, got -0\.1"):
        plan(report(), budget=-0.1)
    with pytest.raises(ValueError, match="min_speedup must be a finite number >= 0, got nan"):
        plan(report(), min_speedup=float("nan"))
