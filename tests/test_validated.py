"""Every GPU backend in the default priority points at a committed device run that
passed its GPU tests."""

import json
from pathlib import Path

from recperf import dispatch
from recperf.validated import VALIDATED

ROOT = Path(__file__).resolve().parents[1]


def evidence_problems(kernel: str, backend: str, results: str) -> list[str]:
    if kernel not in dispatch.kernels():
        return [f"unknown kernel {kernel}"]
    if backend not in dispatch.implementations(kernel):
        return [f"{kernel} has no {backend} implementation"]
    path = ROOT / results
    if not path.is_file():
        return [f"{results} is not committed"]
    record = json.loads(path.read_text())
    problems = []
    if record.get("meta", {}).get("device_type") != "cuda":
        problems.append(f"{results} is not a CUDA run")
    passed = record.get("gpu_tests", {}).get("passed_backends", {})
    if backend not in passed.get(kernel, []):
        problems.append(f"{results} does not record {backend} passing {kernel}")
    return problems


def test_validated_entries_have_evidence():
    for kernel, entries in VALIDATED.items():
        for backend, results in entries:
            assert evidence_problems(kernel, backend, results) == []


def test_evidence_check_rejects_missing_or_failed_runs(tmp_path):
    assert evidence_problems("fm_projected_fwd", "triton", "bench/results/none.json") == [
        "bench/results/none.json is not committed"
    ]
    cpu_run = tmp_path / "cpu.json"
    cpu_run.write_text(json.dumps({"meta": {"device_type": "cpu"}, "gpu_tests": {}}))
    assert evidence_problems("fm_projected_fwd", "triton", str(cpu_run)) == [
        f"{cpu_run} is not a CUDA run",
        f"{cpu_run} does not record triton passing fm_projected_fwd",
    ]
    good = tmp_path / "gpu.json"
    good.write_text(
        json.dumps(
            {
                "meta": {"device_type": "cuda"},
                "gpu_tests": {"passed_backends": {"fm_projected_fwd": ["triton"]}},
            }
        )
    )
    assert evidence_problems("fm_projected_fwd", "triton", str(good)) == []
