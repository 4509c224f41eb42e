"""Merges a device run's GPU test report (JUnit XML) and its benchmark JSON into one
results file for bench/results/, recording which backends passed which kernels.

A backend passes an op's kernels (forward and backward) when every GPU test naming that
backend and op passed (none failed or errored, at least one ran) and its compile test
passed. recperf/validated.py may then list it, citing the committed file.

    python bench/collect_gpu_results.py --junit gpu_tests.xml --bench bench_cuda.jsonl \
        --out bench/results/2026-11-28-h100.json
"""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

# op named in a test id -> the kernels its tests exercise
OP_KERNELS = {
    "fm_pairwise": ("fm_pairwise_fwd", "fm_pairwise_bwd"),
    "fm_projected": ("fm_projected_fwd", "fm_projected_bwd"),
    "fm_projected_norm": ("fm_projected_norm_fwd", "fm_projected_norm_bwd"),
    "quantize_fp8": ("quantize_fp8",),
    "fp8_gemm": ("fp8_gemm",),
    "linear_norm": ("linear_norm_fwd", "linear_norm_bwd"),
    "grouped_linear_norm": ("grouped_linear_norm_fwd", "grouped_linear_norm_bwd"),
    "permute_chunks": ("permute_chunks",),
}
BACKENDS = ("triton", "cuda", "torch", "scaled_mm")
PARAMS = re.compile(r"^(?P<test>[\w]+)\[(?P<params>.*)\]$")


def test_outcomes(junit: Path) -> list[dict]:
    outcomes = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                state = "failed"
            elif child.tag == "skipped" and state == "passed":
                state = "skipped"
        outcomes.append({"name": case.get("name", ""), "state": state})
    return outcomes


def passed_backends(outcomes: list[dict]) -> dict[str, list[str]]:
    per_pair = defaultdict(lambda: {"passed": 0, "failed": 0})
    compile_ok = defaultdict(lambda: True)  # a backend's compile tests, all files
    for o in outcomes:
        m = PARAMS.match(o["name"])
        if not m:
            continue
        parts = m["params"].split("-")
        if m["test"] == "test_gpu_compile_fullgraph":
            compile_ok[parts[0]] &= o["state"] == "passed"
            continue
        if (
            len(parts) >= 2
            and parts[0] in BACKENDS
            and parts[1] in OP_KERNELS
            and o["state"] != "skipped"
        ):
            per_pair[(parts[0], parts[1])]["passed" if o["state"] == "passed" else "failed"] += 1
    result = defaultdict(list)
    for (backend, op), counts in sorted(per_pair.items()):
        if counts["failed"] == 0 and counts["passed"] > 0 and compile_ok[backend]:
            for kernel in OP_KERNELS[op]:
                result[kernel].append(backend)
    return dict(result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--junit", type=Path, required=True)
    p.add_argument("--bench", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--plot", type=Path, help="also plot the benchmark rows to this PNG")
    args = p.parse_args()
    # A tests step stopped by its limit leaves no report: then no backend passed.
    outcomes = test_outcomes(args.junit) if args.junit.exists() else []
    from recperf.benchmarks.report import read_results

    bench = read_results(args.bench) if args.bench.exists() else {"meta": {}, "rows": []}
    counts = defaultdict(int)
    for o in outcomes:
        counts[o["state"]] += 1
    record = {
        "meta": bench["meta"],
        "gpu_tests": {
            "counts": dict(counts),
            "failed": [o["name"] for o in outcomes if o["state"] == "failed"],
            "passed_backends": passed_backends(outcomes),
        },
        "rows": bench["rows"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if args.plot and record["rows"]:
        from recperf.benchmarks.plot import plot

        print(f"wrote {plot(record['rows'], record['meta'], args.plot)}")
    print(
        f"wrote {args.out}: tests {dict(counts)}; passed {record['gpu_tests']['passed_backends']}"
    )


if __name__ == "__main__":
    main()
