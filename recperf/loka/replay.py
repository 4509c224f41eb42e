"""Replay: every candidate (recipe, backend) of every probed layer, run on tensors drawn
from the probe's statistics and from its reservoir of real rows, against the fp32
reference in float64; and each candidate's time.

Per layer and source, the replay builds x [M, K] and the output gradient dy [M, N]
(grouped: [G, M, .]) and takes the layer's real weight, bias and norm parameters; it
calls the op's forward and backward kernels (``torch.ops.recperf.linear_norm`` and
``linear_norm_backward``) for each candidate and compares y (forward), dx (dgrad) and
dW (wgrad) with ``recperf.ops.linear_norm_ref`` in float64. A layer's residual input is
left out: it is added in fp32 whatever the recipe, so leaving it out can only overstate
the GEMM's share of the error. A layer is an ``nn.Linear`` replays as linear_norm with
norm="none".

Times (recperf.loka.timing_source): measured on the current device, or for a target GPU
from committed device results where they exist and the roofline cost model elsewhere.
"""

from __future__ import annotations

import torch

from recperf.loka.candidates import Candidate, candidates
from recperf.loka.errors import Errors, errors
from recperf.loka.probe import LayerRecord, Probe
from recperf.loka.report import DIRECTIONS, CandidateResult, LayerReport, ProbeReport
from recperf.loka.synth import as_operand, draw_rows, reservoir_rows
from recperf.loka.timing_source import TimingSource, timing_source
from recperf.ops.linear_norm_ref import linear_norm_backward_ref, linear_norm_ref

SOURCES = ("stats", "reservoir")
# Backends that compute a recipe's numbers on the CPU, best first, for a target's errors.
PROXY_BACKENDS = ("cpp", "torch")


def replay(
    probe: Probe,
    target: str | TimingSource = "current",
    rows: int = 256,
    sources: tuple[str, ...] = SOURCES,
    results_dir=None,
    repeats: int = 3,
    seed: int = 0,
    row_scale: float = 1.0,
) -> ProbeReport:
    """The report of every layer probe recorded (see the module docstring).

    target: "current" (errors and times here), a datasheet GPU ("h100", "h200"), or a
        TimingSource (tests inject cost models this way).
    rows: rows M of the "stats" draw. sources: any of "stats" and "reservoir".
    results_dir: committed device results (default bench/results of the source tree).
    repeats: timed runs per measured candidate (median).
    row_scale: times are for each layer's most frequent rows M times this (a GPU run
        usually takes larger batches than the CPU run that probed it; layers whose rows
        are batch x something, such as Wukong's feature-axis linears, scale alike)."""
    unknown = [s for s in sources if s not in SOURCES]
    if not sources or unknown:
        raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {sources!r}")
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be an int >= 1, got {rows!r}")
    if not (isinstance(row_scale, int | float) and row_scale > 0):
        raise ValueError(f"row_scale must be a number > 0, got {row_scale!r}")
    device = next(iter(probe.records.values())).site.module.weight.device
    timing = timing_source(target, device, results_dir, repeats)
    layers = [
        _layer(record, timing, rows, sources, seed + i, row_scale)
        for i, record in enumerate(probe.records.values())
    ]
    import recperf

    versions = {"torch": torch.__version__, "recperf": recperf.__version__}
    return ProbeReport(
        probe.model_name, layers, target, timing.description, str(timing.device), versions
    )


def _params(record: LayerRecord, dtype: torch.dtype | None = None):
    m = record.site.module

    def get(name):
        t = getattr(m, name, None)
        return None if t is None else t.detach().cpu().to(dtype or t.dtype)

    eps = getattr(m, "eps", 1e-5)
    return get("weight"), get("bias"), get("norm_weight"), get("norm_bias"), eps


def _inputs(record: LayerRecord, source: str, rows: int, generator: torch.Generator):
    """(x, dy or None) for one source, in the op's layout, fp32 on the CPU; or None."""
    groups = record.site.shape.groups
    if source == "stats":
        x, dy = draw_rows(record.x, rows, generator), draw_rows(record.grad, rows, generator)
    else:
        x, dy = reservoir_rows(record.x), reservoir_rows(record.grad)
        if x is not None and dy is not None:
            m = min(x.shape[0], dy.shape[0])
            x, dy = x[:m], dy[:m]
    if x is None:
        return None
    return as_operand(x, groups), (as_operand(dy, groups) if dy is not None else None)


def _errors_for(record: LayerRecord, inputs, recipe: str, backend: str, device) -> dict:
    """{direction: Errors | None} of one candidate on one (x, dy)."""
    x, dy = inputs
    site = record.site
    w, b, nw, nb, eps = _params(record)
    ref_args = [t.double() if t is not None else None for t in (x, w, b, None, nw, nb)]
    ops = torch.ops.recperf
    op = ops.grouped_linear_norm if site.kind == "grouped_linear_norm" else ops.linear_norm
    op_bwd = (
        ops.grouped_linear_norm_backward
        if site.kind == "grouped_linear_norm"
        else ops.linear_norm_backward
    )
    dev = [t.to(device) if t is not None else None for t in (x, w, b, None, nw, nb)]
    with torch.no_grad():
        y = op(*dev, site.norm, eps, recipe, backend)
        out = {"forward": errors(y, linear_norm_ref(*ref_args, site.norm, eps, "fp32"))}
        if dy is None:
            out["dgrad"] = out["wgrad"] = None
            return out
        grads = op_bwd(dy.to(device), *dev, site.norm, eps, recipe, backend)
        ref = linear_norm_backward_ref(dy.double(), *ref_args, site.norm, eps, "fp32")
    out["dgrad"] = errors(grads[0], ref[0])
    out["wgrad"] = errors(grads[1], ref[1])
    return out


def _worst(per_source: dict[str, dict]) -> dict[str, Errors | None]:
    worst = {}
    for d in DIRECTIONS:
        found = [e[d] for e in per_source.values()]
        worst[d] = None if any(f is None for f in found) else Errors.worst(*found)
    return worst


def _proxy(site_kind: str) -> str:
    """A backend that runs here and computes this recipe's numbers."""
    from recperf import dispatch

    op = "grouped_linear_norm" if site_kind == "grouped_linear_norm" else "linear_norm"
    for backend in PROXY_BACKENDS:
        impl = dispatch.implementations(f"{op}_fwd").get(backend)
        if impl is not None and not impl.available():
            return backend
    return "torch"


def _layer(
    record: LayerRecord, timing: TimingSource, rows: int, sources, seed: int, row_scale: float
) -> LayerReport:
    site = record.site
    M = max(1, round((record.rows or rows) * row_scale))
    dtype = record.x.dtype if record.x.dtype is not None else torch.float32
    pairs, declined = candidates(
        site, M, timing.candidate_device, timing.dtype(dtype), timing.is_target
    )
    generator = torch.Generator().manual_seed(seed)
    inputs = {s: _inputs(record, s, rows, generator) for s in sources}
    inputs = {s: v for s, v in inputs.items() if v is not None}
    results = []
    by_recipe: dict[str, tuple[str, dict]] = {}  # target: one proxy run per recipe
    for pair in pairs:
        if timing.is_target:
            if pair.recipe not in by_recipe:
                proxy = _proxy(site.kind)
                per_source = {
                    s: _errors_for(record, v, pair.recipe, proxy, "cpu") for s, v in inputs.items()
                }
                by_recipe[pair.recipe] = (proxy, per_source)
            error_backend, per_source = by_recipe[pair.recipe]
        else:
            error_backend = pair.backend
            per_source = {
                s: _errors_for(record, v, pair.recipe, pair.backend, timing.device)
                for s, v in inputs.items()
            }
        if not per_source:
            per_source = {"none": dict.fromkeys(DIRECTIONS)}
        times, time_sources = timing.times(
            site, M, Candidate(pair.recipe, pair.backend), _params(record)
        )
        results.append(
            CandidateResult(
                pair.recipe,
                pair.backend,
                _worst(per_source),
                times,
                time_sources,
                error_backend,
                per_source,
            )
        )
    return LayerReport(
        name=site.name,
        kind=site.kind,
        shape=site.shape,
        norm=site.norm,
        rows=M,
        stats=record.summary(),
        candidates=results,
        declined={str(c): why for c, why in declined.items()},
        calls=record.calls,
        sampled=record.sampled,
        pinned=site.pinned,
    )
