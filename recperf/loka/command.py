"""`recperf probe`: train a model on synthetic data with a LoKA probe attached, replay
every layer's candidates, print the report and write the dispatch plan."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from recperf.cli_args import (
    existing_dir,
    nonnegative_float,
    nonnegative_int,
    output_file,
    positive_float,
    positive_int,
)
from recperf.loka.timing_source import TARGETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="wukong",
        choices=("wukong", "stack"),
        help="Wukong on synthetic data (default), or a stack of LinearNorm layers",
    )
    p.add_argument("--steps", type=positive_int, default=64, help="training steps to probe (64)")
    p.add_argument("--batch", type=positive_int, default=256, help="rows per step (256)")
    p.add_argument("--width", type=positive_int, default=256, help="stack: layer width (256)")
    p.add_argument("--depth", type=positive_int, default=4, help="stack: LinearNorm layers (4)")
    p.add_argument(
        "--outliers-at",
        type=positive_int,
        metavar="LAYER",
        help="stack: plant a massive input channel in this layer (>= 1); an "
        "optimizer adapts the layer to it within steps, --lr 0 keeps it",
    )
    p.add_argument("--lr", type=nonnegative_float, default=1e-3, help="Adam's learning rate (1e-3)")
    p.add_argument(
        "--sample-every",
        type=positive_int,
        help="probe one call in this many (default 8 for a probe run; with --overhead, the "
        "Probe's default, 128)",
    )
    p.add_argument(
        "--reservoir", type=nonnegative_int, default=256, help="real rows kept per tensor"
    )
    p.add_argument(
        "--target",
        default="current",
        choices=TARGETS,
        help="time candidates here, or on a datasheet GPU's cost model",
    )
    p.add_argument(
        "--target-batch",
        type=positive_int,
        help="batch size to time at (default: --batch); every layer's rows scale alike",
    )
    p.add_argument(
        "--results", type=existing_dir, help="committed device results (default bench/results)"
    )
    p.add_argument(
        "--budget",
        type=nonnegative_float,
        default=0.1,
        help="largest relative error per direction (0.1)",
    )
    p.add_argument("--min-speedup", type=positive_float, default=1.05, help="over bf16 (1.05)")
    p.add_argument(
        "--keep-bf16",
        nargs="*",
        default=None,
        metavar="LAYER",
        help="pin layers to bf16 ('first', 'last' or names)",
    )
    p.add_argument(
        "--out", type=output_file, default="loka_plan.json", help="plan file (loka_plan.json)"
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--overhead",
        action="store_true",
        help="only measure the probe's overhead on training steps",
    )


def _check(args: argparse.Namespace) -> None:
    """What the flags' types cannot say alone (each value is checked by argparse)."""
    if args.model != "stack" and args.outliers_at is not None:
        raise ValueError("--outliers-at needs --model stack")
    if args.outliers_at is not None and args.outliers_at >= args.depth:
        raise ValueError(
            f"--outliers-at must be a layer in [1, {args.depth - 1}] (of --depth "
            f"{args.depth}), got {args.outliers_at}"
        )


def run(args: argparse.Namespace) -> int:
    from recperf.loka import models, mods, training
    from recperf.loka.overhead import measure
    from recperf.loka.planner import plan
    from recperf.loka.probe import Probe
    from recperf.loka.replay import replay
    from recperf.loka.table import print_report

    console = Console(width=180)
    try:
        _check(args)
        if args.model == "stack":
            work = models.stack(args.width, args.depth, args.batch, args.seed, args.outliers_at)
        else:
            work = models.wukong(args.batch, args.seed)
        if args.overhead:
            every = args.sample_every or Probe.DEFAULT_SAMPLE_EVERY
            result = measure(work, steps=max(args.steps, 4 * every), sample_every=every)
            console.print(str(result))
            return 0
        if args.keep_bf16 is not None:
            mods.keep_bf16(work.model, args.keep_bf16 or ("first", "last"))
        every = args.sample_every or 8
        with Probe(
            work.model, sample_every=every, reservoir=args.reservoir, seed=args.seed
        ) as probe:
            training.train(work, args.steps, lr=args.lr)
        report = replay(
            probe,
            target=args.target,
            rows=min(args.batch, 256),
            results_dir=args.results,
            seed=args.seed,
            row_scale=(args.target_batch or args.batch) / args.batch,
        )
        dispatch_plan = plan(report, budget=args.budget, min_speedup=args.min_speedup)
    except ValueError as exc:
        print(f"recperf probe: error: {exc}", file=sys.stderr)
        return 2
    print_report(report, dispatch_plan, console)
    console.print(f"wrote {dispatch_plan.save(args.out)}")
    return 0
