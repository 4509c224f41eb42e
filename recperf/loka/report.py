"""What the replay found, per layer: the recorded statistics, each candidate's error per
direction and time, and which candidates could not run and why. ``recperf.loka.plan``
reads this; the ``recperf probe`` table prints it."""

from __future__ import annotations

from dataclasses import dataclass, field

from recperf.loka.errors import Errors
from recperf.loka.sites import Shape
from recperf.loka.tensor_stats import StatsSummary

DIRECTIONS = ("forward", "dgrad", "wgrad")


@dataclass
class CandidateResult:
    """One (recipe, backend) of one layer.

    errors: per direction, the worst over the replay's sources (None: not measured, e.g.
        no output gradient was recorded; never within a budget).
    times: seconds per direction of one step ("forward", "dgrad", "wgrad"; a measured
        backward is "backward", dgrad and wgrad together); time_sources says where each
        came from.
    error_backend: the backend whose outputs gave the errors (for a target GPU, one that
        runs here stands in: every backend computes a recipe's numbers, see
        recperf.ops.linear_norm_ref)."""

    recipe: str
    backend: str
    errors: dict[str, Errors | None]
    times: dict[str, float]
    time_sources: dict[str, str] = field(default_factory=dict)
    error_backend: str = ""
    errors_by_source: dict[str, dict[str, Errors | None]] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.times.values())

    def max_error(self) -> float:
        """The largest rel_fro over the directions (inf when one is unmeasured)."""
        values = [e.rel_fro if e is not None else float("inf") for e in self.errors.values()]
        return max(values) if values else float("inf")


@dataclass
class LayerReport:
    name: str
    kind: str
    shape: Shape
    norm: str
    rows: int  # the M the timings are for
    stats: dict[str, StatsSummary]  # "x", "weight", "grad"
    candidates: list[CandidateResult]
    declined: dict[str, str] = field(default_factory=dict)  # "recipe/backend" -> why
    calls: int = 0
    sampled: int = 0
    pinned: str | None = None  # recipe a mod pinned the layer to

    @property
    def nonfinite(self) -> dict[str, int]:
        return {role: s.nonfinite for role, s in self.stats.items()}

    @property
    def grad_seen(self) -> bool:
        return self.stats["grad"].rows > 0


@dataclass
class ProbeReport:
    model: str  # module.qualname of the model's class
    layers: list[LayerReport]
    target: str  # "current", "h100", "h200"
    timing: str  # where the times come from, in words
    device: str  # the device the errors (and measured times) were computed on
    versions: dict[str, str]

    def layer(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the report; layers: {[x.name for x in self.layers]}")
