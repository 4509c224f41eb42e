"""Benchmark output: a rich table for people, JSON for machines and bench/results/."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from recperf.benchmarks.roofline import Ceilings
from recperf.benchmarks.runner import Row
from recperf.jsonfile import parse_json, read_json


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row], ceilings: Ceilings) -> Table:
    t = Table(
        title=f"recperf FM benchmarks on {ceilings.name}",
        caption=(
            f"floor = max(bytes / {ceilings.bandwidth / 1e9:.0f} GB/s, FLOPs / peak) with "
            f"ceilings {ceilings.source}; x eager = eager median / variant median, same run"
        ),
    )
    for col, justify in (
        ("case", "left"),
        ("variant", "left"),
        ("median ms", "right"),
        ("p25-p75 ms", "right"),
        ("GB/s", "right"),
        ("TFLOP/s", "right"),
        ("floor ms", "right"),
        ("% floor", "right"),
        ("x eager", "right"),
        ("rel err", "right"),
    ):
        t.add_column(col, justify=justify)
    previous = None
    for r in rows:
        case = r.case if r.case != previous else ""
        previous = r.case
        if r.error:
            t.add_row(case, r.variant, "[red]failed[/red]", r.error[:60], *[""] * 6)
            continue
        t.add_row(
            case,
            r.variant,
            _fmt(r.median_ms, ".3f"),
            f"{_fmt(r.p25_ms, '.3f')}-{_fmt(r.p75_ms, '.3f')}",
            _fmt(r.gbps, ".1f"),
            _fmt(r.tflops, ".2f"),
            _fmt(r.floor_ms, ".3f"),
            _fmt(None if r.frac_of_floor is None else 100 * r.frac_of_floor, ".1f"),
            _fmt(r.speedup_vs_eager, ".2f"),
            _fmt(r.rel_err, ".1e"),
        )
    return t


def print_table(rows: list[Row], ceilings: Ceilings) -> None:
    Console(width=200).print(table(rows, ceilings))


def _commit() -> str:
    if os.environ.get("RECPERF_COMMIT"):
        return os.environ["RECPERF_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def metadata(device: torch.device, ceilings: Ceilings, argv: list[str]) -> dict:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    from recperf import __version__

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": ceilings.name,
        "device_type": device.type,
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton_version,
        "recperf": __version__,
        "commit": _commit(),
        "argv": argv,
        "ceilings": ceilings.as_dict(),
    }


def write_json(path: str | Path, rows: list[Row], meta: dict) -> None:
    payload = {"meta": meta, "rows": [r.as_dict() for r in rows]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def start_jsonl(path: str | Path, meta: dict) -> None:
    """A results file written as the run goes: a {"meta": ...} line, then one
    {"row": ...} line per row (append_jsonl), each flushed when written."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"meta": meta}) + "\n")


def append_jsonl(path: str | Path, rows: list[Row]) -> None:
    with Path(path).open("a") as f:
        for r in rows:
            f.write(json.dumps({"row": r.as_dict()}) + "\n")


def read_results(path: str | Path) -> dict:
    """{"meta", "rows"} of a results file, .json (write_json) or .jsonl (start_jsonl); a
    .jsonl line cut short by a killed run is dropped. What is wrong with the file itself is
    a ValueError naming it (recperf.jsonfile); its shape is compare.load's check."""
    if not str(path).endswith(".jsonl"):
        return read_json(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    payload = {"meta": {}, "rows": []}
    for line in text.splitlines():
        try:
            entry = parse_json(line, str(path))
        except ValueError:
            continue
        if isinstance(entry, dict) and "meta" in entry:
            payload["meta"] = entry["meta"]
        elif isinstance(entry, dict) and "row" in entry:
            payload["rows"].append(entry["row"])
    return payload
