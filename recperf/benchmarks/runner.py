"""Runs benchmark cases: every variant of a case on the same rotating inputs, its error
against a float64 reference, and its time beside the roofline floor and the eager
baseline measured in the same run."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch

from recperf.benchmarks.fm_cases import FMCase
from recperf.benchmarks.linear_norm_cases import LinearNormCase
from recperf.benchmarks.model_cases import ModelCase
from recperf.benchmarks.roofline import Ceilings
from recperf.benchmarks.timing import (
    Timing,
    rotating,
    sets_to_exceed,
    time_cpu_in_turns,
    time_cuda,
)

BASELINE = "eager"
Case = FMCase | LinearNormCase | ModelCase


@dataclass
class Row:
    case: str
    op: str
    shape: str
    dtype: str
    direction: str
    variant: str
    median_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    gbps: float | None = None
    tflops: float | None = None
    floor_ms: float | None = None
    frac_of_floor: float | None = None
    speedup_vs_eager: float | None = None
    rel_err: float | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out = out.detach().double().cpu()
    ref = ref.cpu()
    if not torch.isfinite(out).all():
        return float("nan")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def train_step(fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], object]:
    def step(t):
        for v in t.values():
            v.grad = None
        fn(t).backward(t["grad"])

    return step


def variants(case: Case, device: torch.device, compile_baseline: bool) -> dict:
    """Every backend that runs the case, the eager baseline, torch.compile of it, and the
    case's own extra baselines (third-party rows, a loop over groups) and compiled rows."""
    out = {b: case.op_fn(b) for b in case.backends(device)}
    out[BASELINE] = case.eager_fn()
    if compile_baseline and case.with_compile:
        # Every case compiles the same eager code at new shapes: start each from a clean
        # cache, or dynamo's recompile limit ends the run.
        torch._dynamo.reset()
        out["compile"] = torch.compile(case.eager_fn(), fullgraph=True, dynamic=False)
    extra = getattr(case, "extra_variants", None)
    if extra is not None:
        out.update(extra(device))
    compiled = getattr(case, "compiled_variants", None)
    if compile_baseline and compiled is not None:
        out.update(compiled(device))
    return out


def _record(row: Row, timing: Timing, work, floor_s: float) -> None:
    row.median_ms = timing.median_s * 1e3
    row.p25_ms, row.p75_ms = timing.p25_s * 1e3, timing.p75_s * 1e3
    row.gbps = work.bytes / timing.median_s / 1e9
    row.tflops = work.flops / timing.median_s / 1e12
    row.frac_of_floor = floor_s / timing.median_s


def _record_error(row: Row, exc: Exception) -> None:
    row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    traceback.print_exc()


def run_case(
    case: Case,
    device: torch.device,
    ceilings: Ceilings,
    compile_baseline: bool = True,
    repeats: int = 7,
) -> list[Row]:
    work = case.work()
    floor_s = ceilings.floor_seconds(work, case.compute_dtype)
    # the eager baseline (and its compiled form) is bounded by its own precision's peak
    baseline_dtype = getattr(case, "baseline_compute_dtype", case.compute_dtype)
    baseline_floor_s = ceilings.floor_seconds(work, baseline_dtype)
    first = case.make_inputs(device, seed=0)
    set_bytes = sum(t.numel() * t.element_size() for t in first.values())
    input_sets = [first] + [
        case.make_inputs(device, seed=i) for i in range(1, sets_to_exceed(set_bytes, device))
    ]
    reference = case.reference(first)
    repeats = max(repeats, getattr(case, "min_repeats", 0))
    rows, calls = [], {}
    for name, fn in variants(case, device, compile_baseline).items():
        row_floor_s = baseline_floor_s if name in (BASELINE, "compile") else floor_s
        row = Row(
            case=case.name,
            op=case.op,
            shape=str(case.shape),
            dtype=case.dtype_name,
            direction=case.direction,
            variant=name,
            floor_ms=row_floor_s * 1e3,
        )
        rows.append(row)
        try:
            with torch.no_grad():
                row.rel_err = _rel_err(fn(first), reference)
            call = rotating(train_step(fn) if case.direction == "fwd+bwd" else fn, input_sets)
            if device.type == "cuda":
                _record(row, time_cuda(call), work, row_floor_s)
            else:
                call()  # the warm-up, here so that a variant that fails fails alone
                calls[name] = call
        except Exception as exc:  # a variant that fails is reported, not fatal
            _record_error(row, exc)
    # The CPU variants in turns (timing.time_cpu_in_turns), after two more untimed runs of
    # each: the C heap takes a few rounds of the mix of allocations to settle (until
    # then large buffers land on fresh pages and fault them in; see allocator.py).
    timings = time_cpu_in_turns(calls, repeats, warmup=2) if calls else {}
    for row in rows:
        if row.variant in timings:
            _record(row, timings[row.variant], work, row.floor_ms / 1e3)
    base = next((r for r in rows if r.variant == BASELINE and r.median_ms), None)
    for r in rows:
        if base and r.median_ms:
            r.speedup_vs_eager = base.median_ms / r.median_ms
    return rows


def run(
    cases: Iterable[Case],
    device: torch.device,
    ceilings: Ceilings,
    compile_baseline: bool = True,
    repeats: int = 7,
    progress: Callable[[str], None] | None = None,
    on_rows: Callable[[list[Row]], None] | None = None,
) -> list[Row]:
    """Every case's rows; on_rows gets each case's as soon as they are measured (so a run
    stopped by a timeout has written every case it finished)."""
    rows = []
    for case in cases:
        if progress:
            progress(case.name)
        case_rows = run_case(case, device, ceilings, compile_baseline, repeats)
        if on_rows:
            on_rows(case_rows)
        rows += case_rows
    return rows
