"""The recperf command: info and the benchmark main job (tiny, through the same code)."""

from __future__ import annotations

import json

import pytest

from recperf.cli import main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["build"]["cpu_kernels"].startswith("built")
    assert info["build"]["cuda_kernels"] in ("built", "not built")
    assert info["backends"]["fm_projected_fwd"]["cpp"].startswith("cpu: ok")


def test_info_tables(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "recperf build" in out and "fm_pairwise_fwd" in out


def expected_error(row) -> float:
    """Each row's error bound against float64: FP8 recipes, the bf16 linear_norm
    baseline, and everything else in fp32."""
    if "fp8" in row["case"]:
        return 5e-2
    if row["case"].startswith("linear_norm") and row["variant"] in ("eager", "compile"):
        return 1e-2
    return 1e-5


def test_bench_quick_writes_every_variant(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--no-compile", "--device", "cpu", "--json", str(path)]) == 0
    payload = json.loads(path.read_text())
    meta, rows = payload["meta"], payload["rows"]
    assert meta["device_type"] == "cpu" and meta["torch"] and meta["ceilings"]["bandwidth"] > 0
    assert meta["cpu_allocator"] == "keeps freed memory"  # glibc here
    cases = {r["case"] for r in rows}
    fm = {c for c in cases if c.startswith("fm_")}
    assert len(fm) == 6  # three FM ops, forward and forward+backward
    models = {c for c in cases if " train step " in c}
    assert len(models) == 4  # one training step of each model
    assert len(cases - fm - models) == 5  # linear_norm: 2 recipes x 2 directions, 1 grouped
    for case in models:
        assert {r["variant"] for r in rows if r["case"] == case} == {"auto", "eager"}
    for case in cases - models:
        variants = {r["variant"] for r in rows if r["case"] == case}
        assert {"torch", "eager"} <= variants and "triton" not in variants
        assert "cpp" in variants or not case.startswith("fm_")
    assert "loop over groups" in {r["variant"] for r in rows if r["case"].startswith("grouped")}
    for r in rows:
        assert r["error"] is None, r
        assert r["median_ms"] > 0 and r["floor_ms"] > 0 and r["frac_of_floor"] > 0
        assert r["rel_err"] < expected_error(r)
    eager = [r for r in rows if r["variant"] == "eager"]
    assert all(r["speedup_vs_eager"] == pytest.approx(1.0) for r in eager)
    assert "x eager" in capsys.readouterr().out


def test_bench_filter_that_matches_nothing_fails(capsys):
    assert main(["bench", "--quick", "--filter", "no-such-op"]) == 2
    assert "no benchmark case matches" in capsys.readouterr().err


def test_bench_cuda_without_a_gpu_fails_cleanly(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_a2a_sim_prints_model_predictions(capsys):
    assert main(["a2a-sim", "--message-bytes", "16K", "--max-gpus", "32"]) == 0
    out = capsys.readouterr().out
    assert "MODEL PREDICTIONS" in out and "flat" in out
    assert len([line for line in out.splitlines() if "x 8" in line]) >= 2  # 8 and 16, 32 GPUs
