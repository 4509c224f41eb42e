"""`recperf bench`: run the microbenchmarks (the main job), or compare two result files,
plot one, or regenerate the index of committed results."""

from __future__ import annotations

import argparse
import sys

import torch
from rich.console import Console

from recperf.cli_args import existing_dir, nonnegative_float, output_file, positive_int


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bench.add_argument(
        "--filter", action="append", help="keep cases whose name contains this (repeatable)"
    )
    bench.add_argument(
        "--dtype", type=dtype_names, help="comma-separated dtypes, e.g. float32,bfloat16"
    )
    bench.add_argument(
        "--json", type=output_file, help="also write the rows and run metadata to this file"
    )
    bench.add_argument(
        "--jsonl",
        type=output_file,
        help="write the metadata, then each case's rows as it finishes (JSON lines)",
    )
    bench.add_argument(
        "--first",
        action="append",
        help="run the cases whose name contains this first, in the order given (repeatable)",
    )
    bench.add_argument(
        "--plot", type=output_file, help="write a PNG: roofline fraction and speedup per op"
    )
    bench.add_argument("--from", dest="from_json", help="plot this result file instead of running")
    bench.add_argument(
        "--repeats", type=positive_int, default=7, help="timed runs per variant (CPU)"
    )
    bench.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    bench.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test)")
    bench.add_argument(
        "--cold-allocator",
        action="store_true",
        help="keep glibc's default of unmapping freed blocks (page faults in the timings)",
    )
    bench.add_argument(
        "--compare", nargs=2, metavar=("BASE", "NEW"), help="compare two result files; no run"
    )
    bench.add_argument(
        "--threshold",
        type=nonnegative_float,
        default=0.10,
        help="--compare: slowdown that counts (0.10)",
    )
    bench.add_argument(
        "--index",
        type=existing_dir,
        metavar="DIR",
        help="regenerate DIR/README.md from its JSON files",
    )


def dtype_names(text: str) -> list[str]:
    """--dtype: comma-separated names of torch floating-point dtypes."""
    names = [n.strip() for n in text.split(",")]
    bad = [n for n in names if not isinstance(getattr(torch, n, None), torch.dtype)]
    bad += [n for n in names if n not in bad and not getattr(torch, n).is_floating_point]
    if bad or not all(names):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated floating dtypes such as float32,bfloat16, got {text!r}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    console = Console(width=200)
    if not (args.compare or args.index or args.from_json):
        return _run_cases(args, console)
    try:
        return _result_files(args, console)
    except ValueError as e:  # a result file that is not one: named, one line
        print(f"recperf bench: error: {e}", file=sys.stderr)
        return 2


def _result_files(args: argparse.Namespace, console: Console) -> int:
    """--compare, --index, --from: work on committed result files, run nothing."""
    if args.compare:
        from recperf.benchmarks.compare import compare

        return compare(*args.compare, args.threshold, console)
    if args.index:
        from recperf.benchmarks.results_index import write_index

        console.print(f"wrote {write_index(args.index)}")
        return 0
    if not args.plot:
        print("recperf bench: error: --from needs --plot", file=sys.stderr)
        return 2
    from recperf.benchmarks.compare import load
    from recperf.benchmarks.plot import plot

    payload = load(args.from_json)
    console.print(f"wrote {plot(payload['rows'], payload['meta'], args.plot)}")
    return 0


def _run_cases(args: argparse.Namespace, console: Console) -> int:
    from tqdm import tqdm

    from recperf.benchmarks import allocator, registry, report, roofline, runner

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "recperf bench: error: --device cuda but no CUDA device is available", file=sys.stderr
        )
        return 2
    dtypes = args.dtype
    cases = registry.select(registry.default_cases(device, args.quick), args.filter, dtypes)
    cases = first(cases, args.first or [])
    if not cases:
        print("recperf bench: error: no benchmark case matches the filters", file=sys.stderr)
        return 2
    warm_allocator = not args.cold_allocator and allocator.keep_freed_memory()
    # Inductor's pool of compile workers would keep competing with the timed kernels.
    from torch._inductor import config as inductor_config

    inductor_config.compile_threads = 1
    ceilings = roofline.measure_ceilings(device, quick=args.quick)
    meta = report.metadata(device, ceilings, sys.argv)
    meta["cpu_allocator"] = "keeps freed memory" if warm_allocator else "default"
    if args.jsonl:
        report.start_jsonl(args.jsonl, meta)
    bar = tqdm(cases, desc="recperf bench", unit="case", file=sys.stderr)
    rows = runner.run(
        bar,
        device,
        ceilings,
        compile_baseline=not args.no_compile,
        repeats=2 if args.quick else args.repeats,
        progress=lambda name: bar.set_postfix_str(name[:60]),
        on_rows=(lambda case_rows: report.append_jsonl(args.jsonl, case_rows))
        if args.jsonl
        else None,
    )
    report.print_table(rows, ceilings)
    if args.json:
        report.write_json(args.json, rows, meta)
        print(f"wrote {args.json}")
    if args.plot:
        from recperf.benchmarks.plot import plot

        print(f"wrote {plot([r.as_dict() for r in rows], meta, args.plot)}")
    return 1 if any(r.error for r in rows) else 0


def first(cases: list, patterns: list[str]) -> list:
    """The cases matching each pattern in turn (each case once), then the rest in order."""
    ordered = [c for p in patterns for c in cases if p in c.name]
    ordered = list({id(c): c for c in ordered}.values())
    return ordered + [c for c in cases if all(c is not o for o in ordered)]
