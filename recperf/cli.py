"""The ``recperf`` command: ``info`` (what was built) and ``bench`` (the main job: the
kernel microbenchmarks on this machine's device)."""

from __future__ import annotations

import argparse
import json
import sys

import torch


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


def _bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from recperf.benchmarks import allocator, fm_cases, linear_norm_cases, report, roofline, runner

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    cases = fm_cases.default_cases(device, quick=args.quick)
    cases += linear_norm_cases.default_cases(device, quick=args.quick)
    if args.dtype:  # each case in each wanted dtype (once)
        wanted = [getattr(torch, name) for name in args.dtype.split(",")]
        cases = list(
            {c.with_dtype(dt).name: c.with_dtype(dt) for c in cases for dt in wanted}.values()
        )
    for pattern in args.filter or []:
        cases = [c for c in cases if pattern in c.name]
    if not cases:
        print("error: no benchmark case matches the filters", file=sys.stderr)
        return 2
    warm_allocator = not args.cold_allocator and allocator.keep_freed_memory()
    # Inductor's pool of compile workers would keep competing with the timed kernels.
    from torch._inductor import config as inductor_config

    inductor_config.compile_threads = 1
    ceilings = roofline.measure_ceilings(device, quick=args.quick)
    bar = tqdm(cases, desc="recperf bench", unit="case", file=sys.stderr)
    rows = runner.run(
        bar,
        device,
        ceilings,
        compile_baseline=not args.no_compile,
        repeats=2 if args.quick else args.repeats,
        progress=lambda name: bar.set_postfix_str(name[:60]),
    )
    report.print_table(rows, ceilings)
    if args.json:
        meta = report.metadata(device, ceilings, sys.argv)
        meta["cpu_allocator"] = "keeps freed memory" if warm_allocator else "default"
        report.write_json(args.json, rows, meta)
        print(f"wrote {args.json}")
    return 1 if any(r.error for r in rows) else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recperf", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="what was built, and which backends run here")
    info.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info.set_defaults(func=_info)

    bench = sub.add_parser("bench", help="the kernel microbenchmarks (the main job)")
    bench.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bench.add_argument(
        "--filter", action="append", help="keep cases whose name contains this (repeatable)"
    )
    bench.add_argument("--dtype", help="comma-separated dtypes, e.g. float32,bfloat16")
    bench.add_argument("--json", help="also write the rows and run metadata to this file")
    bench.add_argument("--repeats", type=int, default=7, help="timed runs per variant (CPU)")
    bench.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    bench.add_argument("--quick", action="store_true", help="one tiny shape (a smoke test)")
    bench.add_argument(
        "--cold-allocator",
        action="store_true",
        help="keep glibc's default of unmapping freed blocks (page faults in the timings)",
    )
    bench.set_defaults(func=_bench)

    from recperf.distributed import simulate

    sim = sub.add_parser(
        "a2a-sim", help="alpha-beta model of flat vs hierarchical vs tower exchange (predictions)"
    )
    simulate.add_arguments(sim)
    sim.set_defaults(func=simulate.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import recperf  # noqa: F401  registers the ops

    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
