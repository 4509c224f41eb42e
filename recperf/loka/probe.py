"""``Probe``: running statistics of every probed layer's inputs, weights and output
gradients, collected online by hooks at a low sampling rate.

    with Probe(model, sample_every=16) as probe:
        for batch in data:
            train_step(model, batch)
    report = replay(probe, target="h100")

A forward hook counts each layer's calls and, on every ``sample_every``-th call (the first
included), adds the call's input and the layer's weight to their statistics and puts a
hook on that call's output, which adds the output gradient when the backward reaches it.
Calls between samples cost one Python hook and a counter, nothing on the device; no
module-level backward hook is used, since those wrap every call. The model's own
computation is untouched (hooks read, never write).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from recperf.loka.sites import Site, find_sites, model_name
from recperf.loka.tensor_stats import StatsSummary, TensorStats

ROLES = ("x", "weight", "grad")


def as_rows(t: torch.Tensor, site: Site, role: str) -> torch.Tensor:
    """The [rows, features] view the statistics take: x and grad flatten leading dims
    into rows (grouped: [G, M, C] -> [M, G * C], one row per m across the groups); a
    weight [N, K] is N rows of K features ([G, N, K] -> [N, G * K])."""
    if site.kind == "grouped_linear_norm":
        return t.transpose(0, 1).reshape(t.shape[1], -1)
    return t.reshape(-1, t.shape[-1])


@dataclass
class LayerRecord:
    """What the probe collected for one layer."""

    site: Site
    x: TensorStats
    weight: TensorStats
    grad: TensorStats
    calls: int = 0
    sampled: int = 0
    rows_seen: Counter = field(default_factory=Counter)  # M of each sampled call

    def stats(self, role: str) -> TensorStats:
        return {"x": self.x, "weight": self.weight, "grad": self.grad}[role]

    @property
    def rows(self) -> int:
        """The most frequent M among the sampled calls (the shape to time)."""
        return self.rows_seen.most_common(1)[0][0] if self.rows_seen else 0

    @property
    def nonfinite(self) -> dict[str, int]:
        """Non-finite values seen, per role ("x", "weight", "grad")."""
        return {r: self.stats(r).nan + self.stats(r).inf for r in ROLES}

    def summary(self) -> dict[str, StatsSummary]:
        return {r: self.stats(r).summary() for r in ROLES}


def _check_positive_int(value, name: str, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class Probe:
    """Hooks on every LinearNorm, GroupedLinearNorm and nn.Linear of ``model``
    (recperf.loka.sites) that collect statistics on one call in ``sample_every``.

    sample_every: calls between samples, per layer. The default, 128, keeps the probe
        under 5% of a training step on a CPU (a sampled step costs about 3.5 plain ones
        for a stack of 256-wide LinearNorms; measure with ``recperf probe --overhead``).
    weight_every: samples between two reads of the weights, which change slowly.
    reservoir: real rows kept per tensor role (inputs and output gradients; weights
        are read whole at replay). outlier_k: outliers are |x - mean| > k std.
    sketch_alpha: relative error of the tail quantiles. seed: the reservoir's draws.
    """

    DEFAULT_SAMPLE_EVERY = 128

    def __init__(
        self,
        model: nn.Module,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
        weight_every: int = 4,
        reservoir: int = 256,
        outlier_k: float = 6.0,
        sketch_alpha: float = 0.01,
        seed: int = 0,
    ) -> None:
        _check_positive_int(sample_every, "sample_every")
        _check_positive_int(weight_every, "weight_every")
        _check_positive_int(reservoir, "reservoir", minimum=0)
        if not (isinstance(outlier_k, int | float) and outlier_k > 0):
            raise ValueError(f"outlier_k must be a number > 0, got {outlier_k!r}")
        self.model = model
        self.model_name = model_name(model)
        self.sample_every = sample_every
        self.weight_every = weight_every
        self.sites = find_sites(model)
        if not self.sites:
            raise ValueError(
                f"model must contain a LinearNorm, GroupedLinearNorm or nn.Linear to probe; "
                f"{type(model).__name__} has none"
            )
        self.records: dict[str, LayerRecord] = {}
        for i, site in enumerate(self.sites):

            def stats(features: int, keep: int, role: int, i=i) -> TensorStats:
                return TensorStats(features, keep, outlier_k, sketch_alpha, seed + 3 * i + role)

            N = site.out_columns
            K = site.shape.in_features * max(site.shape.groups, 1)
            self.records[site.name] = LayerRecord(
                site, stats(site.features, reservoir, 0), stats(K, 0, 1), stats(N, reservoir, 2)
            )
        self._handles: list = []
        self.attach()

    # ---- hooks -------------------------------------------------------------------------
    def _forward_hook(self, record: LayerRecord):
        site = record.site

        def hook(module, args, kwargs, output):
            record.calls += 1
            if (record.calls - 1) % self.sample_every:
                return None
            x = args[0] if args else next(iter(kwargs.values()))
            with torch.no_grad():
                rows = as_rows(x, site, "x")
                record.rows_seen[rows.shape[0]] += 1
                record.x.update(rows)
                if record.sampled % self.weight_every == 0:
                    record.weight.update(as_rows(module.weight, site, "weight"))
            record.sampled += 1
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(self._grad_hook(record))
            return None

        return hook

    @staticmethod
    def _grad_hook(record: LayerRecord):
        def hook(grad):
            with torch.no_grad():
                record.grad.update(as_rows(grad, record.site, "grad"))
            return None

        return hook

    # ---- lifetime ----------------------------------------------------------------------
    def attach(self) -> None:
        """Puts the hooks on (done by the constructor; again after ``detach``, the
        statistics and call counts carry on)."""
        if self._handles:
            return
        self._handles = [
            site.module.register_forward_hook(
                self._forward_hook(self.records[site.name]), with_kwargs=True
            )
            for site in self.sites
        ]

    def detach(self) -> None:
        """Removes every hook (the statistics stay readable)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def summary(self) -> dict[str, dict[str, StatsSummary]]:
        return {name: record.summary() for name, record in self.records.items()}
