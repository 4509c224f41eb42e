"""bench/device_check.sh without a GPU: its preflight names what is missing and stops the
run; its step limits add up to its budget with the collect step's reserve left to it; its
benchmark writes each case's rows as the case finishes, headline cases first."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recperf.benchmarks import report, runner
from recperf.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "device_check.sh"
spec = importlib.util.spec_from_file_location("preflight", ROOT / "bench" / "preflight.py")
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)


def test_step_limits_add_up_to_the_budget_and_collect_runs_last_on_its_reserve():
    text = SCRIPT.read_text()
    budget = int(re.search(r'BUDGET_S="\$\{BUDGET_S:-(\d+)\}"', text)[1])
    reserve = int(re.search(r'RESERVE_S="\$\{RESERVE_S:-(\d+)\}"', text)[1])
    steps = [(m[1], int(m[2])) for m in re.finditer(r"^step (\S+) (\d+) ", text, re.M)]
    assert budget <= 8 * 60
    assert [name for name, _ in steps][-1] == "collect" and steps[-1][1] == reserve
    assert sum(limit for _, limit in steps) == budget
    # every other step is clipped to leave the reserve, and the kill grace is bounded
    assert '[ "$name" = collect ] || left=$((left - RESERVE_S))' in text
    assert "timeout -k 5" in text


def test_preflight_names_each_missing_piece():
    absent = {"xdist", "ninja", "nvcc"}
    found = preflight.missing(
        find_module=lambda m: None if m in absent else object(),
        which=lambda tool: None if tool in absent else f"/usr/bin/{tool}",
        gpu=lambda which: "nvidia-smi lists no GPU",
    )
    assert len(found) == 4
    assert any("xdist" in f and "-n 4" in f for f in found)
    assert any(f.startswith("ninja") for f in found) and any(f.startswith("nvcc") for f in found)
    assert found[-1] == "the GPU (nvidia-smi lists no GPU)"
    ready = preflight.missing(
        find_module=lambda m: object(), which=lambda t: f"/usr/bin/{t}", gpu=lambda w: None
    )
    assert ready == [] or all("Python headers" in f for f in ready)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a dry run is a run without a GPU")
def test_dry_run_without_a_gpu_stops_at_the_preflight(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "preflight: missing the GPU" in done.stdout
    assert "=== build" not in done.stdout and not (tmp_path / "build.log").exists()


def test_bench_rows_are_written_as_each_case_finishes(tmp_path, monkeypatch):
    path = tmp_path / "bench.jsonl"
    real, finished = runner.run_case, []

    def run_case(case, *args, **kwargs):
        if len(finished) == 2:  # the step's timeout strikes during the third case
            raise KeyboardInterrupt
        finished.append(case.name)
        return real(case, *args, **kwargs)

    monkeypatch.setattr(runner, "run_case", run_case)
    argv = ["bench", "--quick", "--no-compile", "--device", "cpu", "--filter", "fm_",
            "--first", "fm_projected_norm fwd+bwd", "--first", "fm_pairwise fwd ", "--jsonl", str(path)]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert finished[0].startswith("fm_projected_norm fwd+bwd")
    assert finished[1].startswith("fm_pairwise fwd ")
    with path.open("a") as f:
        f.write('{"row": {"case": "cut sh')  # a line the kill cut short
    payload = report.read_results(path)
    assert payload["meta"]["device_type"] == "cpu"
    assert {r["case"] for r in payload["rows"]} == set(finished)
    assert all(r["median_ms"] > 0 and r["error"] is None for r in payload["rows"])
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"meta"}
