"""The ``recperf`` command: ``info`` (what was built), ``bench`` (the main job: the
microbenchmarks on this machine's device; also --compare, --plot, --index),
``train`` and ``scaling`` (the models on synthetic or real data), ``a2a-sim`` (the
all-to-all cost model) and ``probe`` (LoKA's per-layer FP8 plan)."""

from __future__ import annotations

import argparse
import json
import sys

from recperf.cli_args import Parser, exit_code


def _info(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from recperf.info import backend_matrix, build_info

    info = build_info()
    if args.json:
        print(json.dumps({"build": info, "backends": backend_matrix()}, indent=2))
        return 0
    console = Console(width=160)
    build = Table(title="recperf build", show_header=False)
    for key, value in info.items():
        build.add_row(key, str(value))
    console.print(build)
    backends = Table(title="backends per kernel (why not, where one cannot run)")
    backends.add_column("kernel")
    backends.add_column("backend")
    backends.add_column("status")
    for kernel, row in backend_matrix().items():
        for backend, status in row.items():
            backends.add_row(kernel, backend, status)
    console.print(backends)
    return 0


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="recperf", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="what was built, and which backends run here")
    info.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info.set_defaults(func=_info)

    from recperf.benchmarks import command as bench_command

    bench = sub.add_parser("bench", help="the kernel microbenchmarks (the main job)")
    bench_command.add_arguments(bench)
    bench.set_defaults(func=bench_command.run)

    from recperf.train import command as train_command

    train = sub.add_parser("train", help="train a model on synthetic data or a data file")
    train_command.add_arguments(train)
    train.set_defaults(func=train_command.run)

    from recperf.train import scaling

    scale = sub.add_parser("scaling", help="Wukong's upscaling sweep: FLOPs vs held-out NE")
    scaling.add_arguments(scale)
    scale.set_defaults(func=scaling.run)

    from recperf.distributed import simulate

    sim = sub.add_parser(
        "a2a-sim", help="alpha-beta model of flat vs hierarchical vs tower exchange (predictions)"
    )
    simulate.add_arguments(sim)
    sim.set_defaults(func=simulate.run)

    from recperf.loka import command as probe_command

    probe = sub.add_parser("probe", help="LoKA: probe a model, plan FP8 where safe and fast")
    probe_command.add_arguments(probe)
    probe.set_defaults(func=probe_command.run)
    return p


def main(argv: list[str] | None = None) -> int:
    """The exit status: 2 for a bad command line (one line on stderr), before any work."""

    def run() -> int:
        args = parser().parse_args(argv)
        import recperf  # noqa: F401  registers the ops

        return args.func(args)

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
