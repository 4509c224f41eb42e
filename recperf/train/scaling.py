"""`recperf scaling`: Wukong's upscaling recipe swept over model sizes on synthetic data,
FLOPs per example against held-out normalized entropy: the paper's scaling-law
experiment at the size this machine allows.

Each size grows every knob the paper grows together: layers, n_F, n_L, k and the FMB's MLP
widths. Every size trains on the same rows, for the same steps and batches, and is
evaluated on the same held-out rows; the table and the JSON give parameters, forward FLOPs
per example, AUC, log loss and NE, and the PNG plots NE against FLOPs (log scale).

    recperf scaling --model wukong --sizes xs,s,m,l --rows 200000 --steps 1500 --out scaling/
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from recperf.cli_args import nonnegative_int, open_fraction, positive_int

# The upscaling ladder: each rung roughly doubles to quadruples the FLOPs of the last.
WUKONG_SIZES: dict[str, dict] = {
    "xs": {"layers": 1, "n_f": 4, "n_l": 4, "k": 4, "fm_hidden": (32,)},
    "s": {"layers": 2, "n_f": 8, "n_l": 8, "k": 8, "fm_hidden": (64,)},
    "m": {"layers": 3, "n_f": 16, "n_l": 16, "k": 16, "fm_hidden": (128,)},
    "l": {"layers": 4, "n_f": 24, "n_l": 24, "k": 24, "fm_hidden": (256,)},
    "xl": {"layers": 6, "n_f": 32, "n_l": 32, "k": 32, "fm_hidden": (512, 512)},
}
SIZES = {"wukong": WUKONG_SIZES}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--model", default="wukong", help=f"one of {', '.join(SIZES)} (wukong)")
    p.add_argument("--sizes", default="xs,s,m,l", help=f"comma list from {', '.join(WUKONG_SIZES)}")
    p.add_argument("--rows", type=positive_int, default=200_000, help="synthetic rows (200000)")
    p.add_argument("--valid-fraction", type=open_fraction, default=0.1, help="held out (0.1)")
    p.add_argument(
        "--steps", type=nonnegative_int, default=1000, help="training steps per size (1000)"
    )
    p.add_argument("--batch-size", type=positive_int, default=512, help="rows per step (512)")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="data, weights and batch order (0)"
    )
    p.add_argument("--out", default="scaling", help="directory for scaling.json and scaling.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _sizes(model: str, names: str) -> list[str]:
    if model not in SIZES:
        raise ValueError(f"--model must be one of {tuple(SIZES)}, got {model!r}")
    wanted = [s.strip() for s in names.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SIZES[model]]
    if not wanted or unknown:
        raise ValueError(f"--sizes must name sizes from {tuple(SIZES[model])}, got {names!r}")
    return wanted


def sweep(args: argparse.Namespace) -> list[dict]:
    """Train each size; one result dict per size (the JSON rows)."""
    import torch

    from recperf.data.synthetic import SyntheticConfig, generate
    from recperf.models import build_model, flops_per_example, param_counts
    from recperf.train.loop import TrainConfig, train

    sizes = _sizes(args.model, args.sizes)
    data = generate(SyntheticConfig(rows=args.rows, seed=args.seed))
    train_rows, valid_rows = data.split(args.valid_fraction, seed=args.seed)
    config = TrainConfig(batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress)
    results = []
    for name in sizes:
        torch.manual_seed(args.seed)
        model = build_model(args.model, data.spec, **SIZES[args.model][name])
        result = train(model, train_rows, args.steps, valid_rows, config)
        results.append({
            "size": name,
            "config": SIZES[args.model][name],
            "params": param_counts(model),
            "flops_per_example": flops_per_example(model),
            "examples_per_s": result.examples_per_s,
            **result.metrics,
        })  # fmt: skip
    bayes = valid_rows.report.get("bayes_auc")
    for r in results:
        r["bayes_auc"] = bayes
    return results


def plot(results: list[dict], path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    flops = [r["flops_per_example"] for r in results]
    ax.plot(flops, [r["ne"] for r in results], "o-")
    for r in results:
        ax.annotate(r["size"], (r["flops_per_example"], r["ne"]), textcoords="offset points",
                    xytext=(4, 4))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("forward FLOPs per example")
    ax.set_ylabel("held-out normalized entropy (lower is better)")
    ax.set_title(f"{model} upscaling on synthetic data")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(results: list[dict]):
    from rich.table import Table

    table = Table(title="scaling: FLOPs per example vs held-out NE")
    for col in ("size", "params (dense)", "params (emb)", "MFLOP/ex", "AUC", "log loss", "NE"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["size"], f"{r['params']['dense']:,}", f"{r['params']['embedding']:,}",
            f"{r['flops_per_example'] / 1e6:.3f}", f"{r['auc']:.4f}", f"{r['log_loss']:.4f}",
            f"{r['ne']:.4f}",
        )  # fmt: skip
    return table


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    try:
        results = sweep(args)
    except ValueError as exc:
        print(f"recperf scaling: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"model": args.model, "rows": results}, indent=2))
    plot(results, out / "scaling.png", args.model)
    console = Console(width=120)
    console.print(_table(results))
    bayes = results[0]["bayes_auc"]
    if bayes is not None and not math.isnan(bayes):
        console.print(f"Bayes AUC of the held-out rows: {bayes:.4f}")
    console.print(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'}")
    return 0
