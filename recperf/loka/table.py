"""The ``recperf probe`` report as rich tables: one per layer, its statistics in the
title, a row per candidate (error per direction, time, speedup over bf16, verdict), and
the plan's choice and why in the caption."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from recperf.loka.dispatch_plan import DispatchPlan
from recperf.loka.report import DIRECTIONS, LayerReport, ProbeReport


def _err(e) -> str:
    return "-" if e is None else f"{e.rel_fro:.2e}"


def _stats_line(layer: LayerReport) -> str:
    parts = []
    for role in ("x", "weight", "grad"):
        s = layer.stats[role]
        if s.rows == 0:
            parts.append(f"{role}: not seen")
            continue
        bad = f", {s.nan} NaN {s.inf} inf" if s.nonfinite else ""
        parts.append(
            f"{role}: amax {s.amax:.3g}, p99.9 {s.quantiles['p99.9']:.3g}, std {s.std:.3g}, "
            f"kurt {s.excess_kurtosis:.3g}, outliers {s.outlier_fraction:.2%}{bad}"
        )
    return "\n".join(parts)


def layer_table(layer: LayerReport, plan: DispatchPlan) -> Table:
    choice = plan.layers[layer.name]
    title = (
        f"{layer.name}  {layer.kind} {layer.shape} norm={layer.norm}, timed at M={layer.rows}"
        f"  ({layer.sampled}/{layer.calls} calls sampled)\n{_stats_line(layer)}"
    )
    t = Table(
        title=title,
        title_justify="left",
        caption_justify="left",
        caption=f"choice: {choice.recipe}/{choice.backend} ({choice.reason})",
    )
    for col in (
        "recipe",
        "backend",
        *(f"{d} err" for d in DIRECTIONS),
        "time us",
        "x bf16",
        "verdict",
    ):
        t.add_column(col, justify="left" if col in ("recipe", "backend", "verdict") else "right")
    bf16 = [c for c in layer.candidates if c.recipe == "bf16" and c.times]
    base = min((c.total_s for c in bf16), default=None)
    for c in layer.candidates:
        within = all(
            c.errors.get(d) is not None and c.errors[d].rel_fro < plan.budget for d in DIRECTIONS
        )
        speedup = base / c.total_s if base and c.total_s else None
        chosen = (c.recipe, c.backend) == (choice.recipe, choice.backend)
        verdict = "within budget" if within else "over budget"
        verdict = "CHOSEN" if chosen else ("bf16" if c.recipe == "bf16" else verdict)
        t.add_row(
            c.recipe,
            c.backend,
            *(_err(c.errors.get(d)) for d in DIRECTIONS),
            f"{c.total_s * 1e6:.1f}",
            "-" if speedup is None else f"{speedup:.2f}",
            verdict,
            style="bold green" if chosen else None,
        )
    return t


def print_report(report: ProbeReport, plan: DispatchPlan, console: Console) -> None:
    console.print(
        f"[bold]LoKA probe of {report.model}[/bold]: errors (relative Frobenius vs fp32) on "
        f"{report.device}; times: {report.timing}. Budget {plan.budget:g} per direction, "
        f"speedup over bf16 above {plan.min_speedup:g}x."
    )
    for layer in report.layers:
        console.print(layer_table(layer, plan))
    counts = ", ".join(f"{n} {recipe}" for recipe, n in sorted(plan.counts().items()))
    console.print(f"plan: {counts}")
