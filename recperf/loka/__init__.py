"""LoKA: learn each layer's real statistics online, measure each candidate kernel's error
and speed under them, adapt the model so more layers are safe, and dispatch each layer
to the fastest kernel within an accuracy budget.

    probe = Probe(model)                    # hooks; train as usual
    report = replay(probe, target="h100")   # errors here, times of the target
    dispatch_plan = plan(report, budget=0.1)
    dispatch_plan.save("plan.json")
    apply(model, "plan.json")               # recipes and backends set once

``recperf probe`` does all of it from the command line.
"""

from recperf.loka import mods
from recperf.loka.apply import apply
from recperf.loka.dispatch_plan import DispatchPlan, LayerChoice
from recperf.loka.planner import plan
from recperf.loka.probe import Probe
from recperf.loka.replay import replay
from recperf.loka.report import CandidateResult, LayerReport, ProbeReport

__all__ = [
    "CandidateResult",
    "DispatchPlan",
    "LayerChoice",
    "LayerReport",
    "Probe",
    "ProbeReport",
    "apply",
    "mods",
    "plan",
    "replay",
]
