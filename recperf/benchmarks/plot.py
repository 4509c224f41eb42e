"""`recperf bench --plot out.png`: per op and variant, the fraction of the roofline
floor reached and the speedup over the eager baseline (medians over the op's cases)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path


def summarize(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """op -> variant -> (median % of floor, median speedup vs eager)."""
    acc = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for r in rows:
        if r.get("median_ms") and r.get("frac_of_floor") is not None:
            frac, speed = acc[r["op"]][r["variant"]]
            frac.append(100 * r["frac_of_floor"])
            speed.append(r.get("speedup_vs_eager") or 0.0)
    return {
        op: {v: (statistics.median(f), statistics.median(s)) for v, (f, s) in variants.items()}
        for op, variants in acc.items()
    }


def plot(rows: list[dict], meta: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(rows)
    ops = sorted(summary)
    variants = sorted({v for per_op in summary.values() for v in per_op})
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(ops)), 4.5))
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        xs = [o + (i - (len(variants) - 1) / 2) * width for o in range(len(ops))]
        for ax, k in zip(axes, (0, 1), strict=True):
            ys = [summary[op].get(variant, (0.0, 0.0))[k] for op in ops]
            ax.bar(xs, ys, width, label=variant)
    titles = ("achieved / roofline floor (%)", "speedup over eager (x)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xticks(range(len(ops)), ops, rotation=20, ha="right")
        ax.set_title(title)
    axes[1].axhline(1.0, color="black", linewidth=0.8)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"recperf bench: {meta.get('device', '?')}, {meta.get('date', '')} (medians over cases)"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
