"""Probe -> replay -> plan -> apply on a LinearNorm stack, planned for a target on which
FP8 is faster: the layer with planted heavy outliers stays bf16, the well-behaved ones go
FP8, and the planned model stays within the budget of the fp32 model on held-out data."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from recperf.benchmarks.roofline import DATASHEETS
from recperf.loka import apply, models, mods, plan, replay, training
from recperf.loka.costmodel import CostModel
from recperf.loka.probe import Probe
from recperf.loka.stack import plant_massive_activation
from recperf.loka.timing_source import Target

BUDGET = 0.1


def fp8_faster() -> Target:
    """An H100 without launch overhead or memory limits: FP8 GEMMs are simply twice as
    fast as bf16 ones, whatever the (small) test shapes."""
    ceilings = dataclasses.replace(DATASHEETS["h100"], bandwidth=1e18)
    return Target("h100", results_dir="/nonexistent", cost_model=CostModel(ceilings, 0.0))


def rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def probed():
    work = models.stack(width=64, depth=3, batch=128, seed=0)
    training.train(work, 10)
    plant_massive_activation(work.model, 1, scale=1e6)  # body.2's inputs: channel 0 ~1e6
    mods.keep_bf16(work.model, ["last"])
    reference = copy.deepcopy(work.model)
    with Probe(work.model, sample_every=2) as probe:
        training.train(work, 6, lr=0.0, offset=100)  # lr 0: keep the planted channel
    report = replay(probe, target=fp8_faster(), rows=128)
    return work, reference, report


def test_outlier_layer_stays_bf16_and_the_others_go_fp8(probed):
    _, _, report = probed
    outliers = report.layer("body.2")
    assert outliers.stats["x"].amax > 1e5 and outliers.stats["x"].outlier_fraction > 0
    p = plan(report, budget=BUDGET)
    recipes = {name: c.recipe for name, c in p.layers.items()}
    assert recipes["body.2"] == "bf16"
    assert recipes["body.0"].startswith("fp8") and recipes["body.4"].startswith("fp8")
    assert recipes["head"] == "bf16" and "pinned" in p.layers["head"].reason
    assert "budget" in p.layers["body.2"].reason
    for name in ("body.0", "body.4"):
        assert p.layers[name].speedup > 1.05
        assert max(p.layers[name].errors.values()) < BUDGET
    # the replay saw what FP8 does to body.2: tensor-wise scaling loses the rest of a row
    tensorwise = next(c for c in outliers.candidates if c.recipe == "fp8_tensorwise")
    assert tensorwise.errors["forward"].rel_fro > BUDGET
    # every candidate of a target has its time from the cost model, and says so
    assert all("cost model" in s for c in outliers.candidates for s in c.time_sources.values())


def test_planned_model_stays_within_budget_of_fp32_on_held_out_batches(probed):
    work, reference, report = probed
    model = copy.deepcopy(work.model)
    apply(model, plan(report, budget=BUDGET), use_backends=False)  # backends are the GPU's
    held_out = list(work.batches(3, 10_000))
    with torch.no_grad():
        errors = [rel(model(x), reference(x)) for x, _ in held_out]
    assert max(errors) < BUDGET, errors
    # the test can fail: FP8 in the outlier layer takes the model far out of budget
    model.body[2].recipe = "fp8_rowwise"
    with torch.no_grad():
        forced = [rel(model(x), reference(x)) for x, _ in held_out]
    assert min(forced) > BUDGET, forced


def test_nonfinite_inputs_make_a_layer_bf16_whatever_its_errors():
    work = models.stack(width=16, depth=2, batch=32, seed=1)
    with Probe(work.model, sample_every=1) as probe:
        for i, (x, y) in enumerate(work.batches(3)):
            if i == 1:
                x[0, 0] = float("nan")
            work.loss(work.model, (x, y)).backward()
    report = replay(probe, target=fp8_faster(), rows=32)
    first = report.layer("body.0")
    assert first.nonfinite["x"] == 1
    # the NaN row is left out of the statistics, so the replay's errors are finite and
    # every candidate passes this budget; only the non-finite count keeps the layers bf16
    assert all(c.max_error() < 1 for c in first.candidates)
    p = plan(report, budget=1e9, min_speedup=0)
    assert "non-finite values seen (x: 1" in p.layers["body.0"].reason
    # the NaN went on through the forward and came back in every output gradient
    assert report.layer("head").nonfinite["x"] > 0 and first.nonfinite["grad"] > 0
    for choice in p.layers.values():
        assert choice.recipe == "bf16" and "non-finite" in choice.reason


def test_current_device_replay_measures_times_here():
    work = models.stack(width=16, depth=1, batch=16, seed=2)
    with Probe(work.model, sample_every=1) as probe:
        training.train(work, 2)
    report = replay(probe, target="current", rows=16, repeats=1)
    layer = report.layer("body.0")
    backends = {c.backend for c in layer.candidates}
    assert backends <= {"cpp", "torch", "torchao"} and "triton" not in backends
    assert "interpreter" in layer.declined["bf16/triton"]
    for c in layer.candidates:
        assert set(c.times) == {"forward", "backward"} and c.total_s > 0
        assert c.error_backend == c.backend
        assert all("measured on CPU" in s for s in c.time_sources.values())
    assert "measured on CPU" in report.timing
