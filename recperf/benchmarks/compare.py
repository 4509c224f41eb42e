"""`recperf bench --compare BASE.json NEW.json`: the change of every row the two runs
share, and a verdict a person or CI can act on (exit status 1 past the threshold)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from recperf.benchmarks.report import read_results


@dataclass(frozen=True)
class Change:
    case: str
    variant: str
    base_ms: float
    new_ms: float

    @property
    def ratio(self) -> float:
        """new / base: above 1 is slower."""
        return self.new_ms / self.base_ms

    def verdict(self, threshold: float) -> str:
        if self.ratio > 1 + threshold:
            return "regression"
        if self.ratio < 1 / (1 + threshold):
            return "improvement"
        return "same"


def load(path: str | Path) -> dict:
    """A result file of ``recperf bench --json`` or ``--jsonl``: a ValueError naming the file
    for one that cannot be read, is not JSON, or is not shaped as one (meta, rows of case,
    variant and median_ms a number > 0 or null)."""
    payload = read_results(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise ValueError(f"{path} is not a recperf bench result (no 'meta' and 'rows')")
    rows = payload.get("rows")
    if not isinstance(rows, list):
        raise ValueError(f"{path} is not a recperf bench result (no 'meta' and 'rows')")
    for i, row in enumerate(rows):
        problem = _row_problem(row)
        if problem:
            raise ValueError(f"{path}: rows[{i}] {problem}")
    return payload


def _row_problem(row: object) -> str | None:
    if not isinstance(row, dict):
        return f"must be an object, got {type(row).__name__}"
    for key in ("case", "variant"):
        if not isinstance(row.get(key), str):
            return f"needs {key!r} as a string"
    ms = row.get("median_ms")
    if ms is not None and (
        isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 < ms < math.inf
    ):
        return f"median_ms must be a number > 0 or null, got {ms!r}"
    return None


def changes(base: dict, new: dict) -> list[Change]:
    def timed(payload):
        return {
            (r["case"], r["variant"]): r["median_ms"] for r in payload["rows"] if r.get("median_ms")
        }

    base_rows, new_rows = timed(base), timed(new)
    return [
        Change(case, variant, base_rows[(case, variant)], new_rows[(case, variant)])
        for case, variant in sorted(base_rows.keys() & new_rows.keys())
    ]


def table(found: list[Change], threshold: float, base_meta: dict, new_meta: dict) -> Table:
    def describe(meta: dict) -> str:
        return f"{meta.get('device')} {meta.get('date')} ({str(meta.get('commit', ''))[:10]})"

    t = Table(
        title="recperf bench --compare",
        caption=f"base {describe(base_meta)}; new {describe(new_meta)}; threshold {threshold:.0%}",
    )
    for col in ("case", "variant", "base ms", "new ms", "change", "verdict"):
        t.add_column(col, justify="left" if col in ("case", "variant", "verdict") else "right")
    colors = {"regression": "red", "improvement": "green", "same": "white"}
    for c in found:
        v = c.verdict(threshold)
        t.add_row(
            c.case, c.variant, f"{c.base_ms:.3f}", f"{c.new_ms:.3f}", f"{c.ratio - 1:+.1%}",
            f"[{colors[v]}]{v}[/{colors[v]}]",
        )  # fmt: skip
    return t


def compare(base_path: str, new_path: str, threshold: float, console) -> int:
    """Prints the table; returns 1 if any row regressed past the threshold, else 0."""
    base, new = load(base_path), load(new_path)
    found = changes(base, new)
    if base["meta"].get("device") != new["meta"].get("device"):
        console.print("[yellow]warning: the two runs are on different devices[/yellow]")
    if not found:
        console.print("no timed rows in common")
        return 0
    console.print(table(found, threshold, base["meta"], new["meta"]))
    regressions = [c for c in found if c.verdict(threshold) == "regression"]
    console.print(f"{len(regressions)} regression(s), {len(found)} rows compared")
    return 1 if regressions else 0
