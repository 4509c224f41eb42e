"""Timings from committed device runs (``bench/results/*.json``, written by ``recperf bench
--json`` or bench/device_check.sh), for a target GPU: a real measurement beats the cost
model wherever one exists for the layer's exact shape, recipe and backend.

A results file's rows name their case as "<op> <recipe> <fwd|fwd+bwd> <dtype> [G=g ]M=m
K=k N=n" and their variant by backend; the forward time is the "fwd" row's median, the
backward time the "fwd+bwd" median minus it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recperf.jsonfile import read_json
from recperf.loka.candidates import Candidate
from recperf.loka.sites import Site

CASE = re.compile(
    r"^(?P<op>\w+) (?P<recipe>\w+) (?P<direction>fwd\+bwd|fwd) (?P<dtype>\w+) "
    r"(?:G=(?P<G>\d+) )?M=(?P<M>\d+) K=(?P<K>\d+) N=(?P<N>\d+)$"
)


def default_results_dir() -> Path:
    """bench/results of the source tree recperf runs from (absent in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "bench" / "results"


@dataclass
class DeviceResults:
    """Median seconds by (op, recipe, direction, G, M, K, N, backend), from the files
    measured on devices whose name contains ``device_match``."""

    table: dict[tuple, tuple[float, str]]

    @classmethod
    def load(cls, folder: str | Path | None, device_match: str) -> DeviceResults:
        folder = Path(folder) if folder is not None else default_results_dir()
        table: dict[tuple, tuple[float, str]] = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                payload = read_json(path)
            except ValueError:
                continue  # not a results file; the bench index reports those
            meta = payload.get("meta") if isinstance(payload, dict) else None
            rows = payload.get("rows") if isinstance(payload, dict) else None
            if not isinstance(meta, dict) or not isinstance(rows, list):
                continue
            if device_match.lower() not in str(meta.get("device", "")).lower():
                continue
            device = meta.get("device")
            for row in rows:
                if not isinstance(row, dict):
                    continue
                m = CASE.match(str(row.get("case", "")))
                median = row.get("median_ms")
                if not m or not _is_positive_number(median):
                    continue
                key = (
                    m["op"],
                    m["recipe"],
                    m["direction"],
                    int(m["G"] or 0),
                    int(m["M"]),
                    int(m["K"]),
                    int(m["N"]),
                    row.get("variant"),
                )
                table[key] = (median / 1e3, f"{path.name} ({device})")
        return cls(table)

    def times(self, site: Site, rows: int, candidate: Candidate):
        """({"forward": s, "backward": s} or a subset, {direction: source})."""
        if site.norm != "layer":  # the benchmark cases all take a LayerNorm
            return {}, {}
        op = "grouped_linear_norm" if site.kind == "grouped_linear_norm" else "linear_norm"
        s = site.shape
        key = (
            op,
            candidate.recipe,
            "fwd",
            s.groups,
            rows,
            s.in_features,
            s.out_features,
            candidate.backend,
        )
        fwd = self.table.get(key)
        both = self.table.get((*key[:2], "fwd+bwd", *key[3:]))
        times, sources = {}, {}
        if fwd:
            times["forward"], sources["forward"] = fwd
            if both and both[0] > fwd[0]:
                times["backward"], sources["backward"] = both[0] - fwd[0], both[1]
        return times, sources


def _is_positive_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < float("inf")
