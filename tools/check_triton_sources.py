#!/usr/bin/env python3
"""Compile every Triton launch of the GPU benchmarks and GPU tests for sm_90a (H100/H200),
ahead of time, on a machine without a GPU (`make triton-check`).

The project's own launchers pick each launch (tools/triton_launches.py drives them,
tools/triton_capture.py records what Triton's binder computes); each distinct
specialization is then compiled by Triton for GPUTarget("cuda", 90, 32) through
JITFunction.preload, i.e. the JIT's own path, ptxas included. Prints one line per kernel
and configuration family (pointer dtypes, warps, stages, tile constexprs): how many
specializations, the most registers, spill bytes and shared memory of any of them.

Fails (exit 1) on a compile error, a launcher that raised, shared memory over sm_90's
227 KB per block, or spills in a kernel with 16-bit / fp8 operands at a benchmark shape
(unless ALLOWED_SPILLS names it, with the reason printed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.pop("TRITON_INTERPRET", None)  # before Triton defines any kernel

import triton_capture

SMEM_LIMIT = 227 * 1024  # sm_90: the most shared memory one block may take (opt-in)
LOW_PRECISION = re.compile(r"^\*(bf16|fp16|fp8)")
# kernel -> why its spills at benchmark shapes are accepted for now (printed on each run).
ALLOWED_SPILLS: dict[str, str] = {}


def _worker_init() -> None:
    import triton

    triton.knobs.compilation.always_compile = True  # the ptxas log is only made by a compile
    triton.knobs.nvidia.dump_ptxas_log = True
    triton_capture.use_hopper_driver()


def compile_one(module: str, kernel: str, spec: str) -> dict:
    """Compile one specialization for sm_90a; its resources from ptxas's log."""
    start = time.perf_counter()
    log = io.StringIO()
    try:
        fn = getattr(importlib.import_module(f"recperf.kernels.{module}"), kernel)
        with contextlib.redirect_stdout(log):
            compiled = fn.preload(spec)
    except Exception as exc:  # a compile error is a result, reported with the rest
        return {"error": f"{type(exc).__name__}: {str(exc).strip()[:2000]}"}
    text = log.getvalue()
    regs = [int(r) for r in re.findall(r"Used (\d+) registers", text)]
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if not regs:
        return {"error": f"no ptxas resource report in the compile log: {text[-500:]!r}"}
    return {
        "registers": max(regs),
        "spill_bytes": max((int(s) + int(ld) for s, ld in spills), default=0),
        "shared": int(compiled.metadata.shared),
        "seconds": time.perf_counter() - start,
    }


def capture(select: str | None) -> tuple[list[triton_capture.Launch], list[str]]:
    import torch
    import triton_launches

    import recperf  # noqa: F401  registers the ops

    recorder = triton_capture.Recorder()
    failures = []
    calls = [*triton_launches.bench_calls(), *triton_launches.test_calls()]
    with triton_capture.capturing(recorder), triton_launches.zeros_for_randn():
        for label, call in calls:
            if select and select not in label:
                continue
            recorder.origin = label
            try:
                call()
            except Exception as exc:
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
            torch.manual_seed(0)
    return list(recorder.launches.values()), failures


def family(launch: triton_capture.Launch) -> str:
    """Kernel, pointer dtypes, warps and stages: one line of the table."""
    ptrs = sorted({t[1:] for t in launch.signature.values() if t.startswith("*")})
    warps, stages = launch.num_warps, launch.num_stages
    return f"{launch.module}.{launch.kernel} [{','.join(ptrs)}] w{warps}s{stages}"


def tiles(launch: triton_capture.Launch) -> str:
    """The launch's tile constexprs (BLOCK_*), to name the member of a family that spills."""
    names = list(launch.signature)
    blocks = []
    for path, value in launch.constants.items():
        head = path.split(".")[0]
        name = names[int(head)] if head.isdigit() else path
        if name.startswith("BLOCK"):
            blocks.append(f"{name.removeprefix('BLOCK_')}={value}")
    return " ".join(sorted(blocks))


def judge(launch: triton_capture.Launch, result: dict) -> list[str]:
    """The rules this check enforces, as messages (empty: the launch passes)."""
    if "error" in result:
        return [f"compile error: {result['error']}"]
    problems = []
    if result["shared"] > SMEM_LIMIT:
        problems.append(f"shared memory {result['shared']} B > sm_90's {SMEM_LIMIT} B")
    low = any(LOW_PRECISION.match(t) for t in launch.signature.values())
    bench = any(o.startswith("bench ") for o in launch.origins)
    if result["spill_bytes"] and low and bench and launch.kernel not in ALLOWED_SPILLS:
        origin = next(o for o in launch.origins if o.startswith("bench "))
        problems.append(
            f"spills {result['spill_bytes']} B a thread at a benchmark shape ({origin})"
        )
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2, help="compile processes (2)")
    p.add_argument("--filter", help="only the drivers whose label contains this")
    p.add_argument("--json", type=Path, help="also write every launch and its result here")
    args = p.parse_args()
    import triton

    start = time.perf_counter()
    launches, failures = capture(args.filter)
    print(
        f"triton {triton.__version__}: {len(launches)} distinct launches captured in "
        f"{time.perf_counter() - start:.0f}s; compiling for sm_90a with {args.jobs} processes"
    )
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
        futures = [pool.submit(compile_one, x.module, x.kernel, x.spec) for x in launches]
        results = [f.result() for f in futures]

    families = defaultdict(list)
    for launch, result in zip(launches, results, strict=True):
        families[family(launch)].append((launch, result))
    problems = [f"driver {f}" for f in failures]
    allowed_used: set[str] = set()
    print(f"{'kernel [pointer dtypes] warps/stages':<64} {'n':>3} {'regs':>4} "
          f"{'spill B':>7} {'smem B':>7}  status (the spilling tiles)")  # fmt: skip
    for name in sorted(families):
        members = families[name]
        ok = [(x, r) for x, r in members if "error" not in r]
        own = [f"{name} {tiles(x)}: {m}" for x, r in members for m in judge(x, r)]
        problems += own
        regs = max((r["registers"] for _, r in ok), default=0)
        smem = max((r["shared"] for _, r in ok), default=0)
        spill, worst = max(
            ((r["spill_bytes"], x) for x, r in ok), default=(0, None), key=lambda v: v[0]
        )
        if len(ok) < len(members):
            status = f"error ({len(members) - len(ok)})"
        elif own:
            status = "FAIL"
        else:
            status = "compiled"
            low = any(LOW_PRECISION.match(t) for t in worst.signature.values()) if worst else False
            if spill and low and worst.kernel in ALLOWED_SPILLS:
                status = f"allowed spills: {ALLOWED_SPILLS[worst.kernel]}"
                allowed_used.add(worst.kernel)
        if spill:
            status += f" ({tiles(worst)})"
        print(f"{name:<64} {len(members):>3} {regs:>4} {spill:>7} {smem:>7}  {status}")
    if args.json:
        rows = [
            {**{k: v for k, v in vars(x).items() if k != "spec"}, "tiles": tiles(x), **r}
            for x, r in zip(launches, results, strict=True)
        ]
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    seconds = sum(r.get("seconds", 0.0) for r in results)
    print(
        f"{len(launches)} launches in {len(families)} families, {seconds:.0f}s of compile time, "
        f"{time.perf_counter() - start:.0f}s in all; {len(problems)} problems"
    )
    for kernel in sorted(set(ALLOWED_SPILLS) - allowed_used):
        if not args.filter:
            print(f"note: ALLOWED_SPILLS[{kernel!r}] is unused now: remove it")
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
