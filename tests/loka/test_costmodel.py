"""The target cost model and committed device results as timing sources."""

from __future__ import annotations

import json

import pytest

from recperf.loka.candidates import Candidate, candidates
from recperf.loka.costmodel import TRITON_FUSED_MAX_N, CostModel
from recperf.loka.sites import find_sites
from recperf.loka.stack import LinearNormStack
from recperf.loka.timing_source import Target, timing_source


def site(width: int):
    return find_sites(LinearNormStack((width, width)))[0]


def total(model, s, rows, recipe, backend) -> float:
    return sum(model.times(s, rows, Candidate(recipe, backend)).values())


def test_fp8_wins_on_large_gemms_and_loses_on_small_ones():
    h100 = CostModel.for_target("h100")
    big, small = site(4096), site(64)
    assert total(h100, big, 16384, "fp8_rowwise", "triton") < 0.8 * total(
        h100, big, 16384, "bf16", "triton"
    )
    assert total(h100, small, 256, "fp8_rowwise", "triton") > total(
        h100, small, 256, "bf16", "triton"
    )


def test_backend_structure_shows_in_the_times():
    h100 = CostModel.for_target("h100")
    s = site(2048)
    # the reference emulates FP8 in fp32: never faster than bf16
    assert total(h100, s, 8192, "fp8_rowwise", "torch") > total(h100, s, 8192, "bf16", "torch")
    # cuda's row-wise dgrad (e5m2 x e4m3) does not fit cuBLASLt: an fp32 GEMM
    cuda = h100.times(s, 8192, Candidate("fp8_rowwise", "cuda"))
    tensorwise = h100.times(s, 8192, Candidate("fp8_tensorwise", "cuda"))
    assert cuda["dgrad"] > 2 * tensorwise["dgrad"]
    # keeping wgrad in bf16 changes the wgrad time only (either way: the FP8 wgrad saves
    # GEMM time but pays quantize passes over dz and x)
    gw = h100.times(s, 8192, Candidate("fp8_rowwise_gw_hp", "triton"))
    row = h100.times(s, 8192, Candidate("fp8_rowwise", "triton"))
    assert (gw["forward"], gw["dgrad"]) == (row["forward"], row["dgrad"])
    assert gw["wgrad"] != row["wgrad"]
    # h200 has the same peaks and more bandwidth
    h200 = CostModel.for_target("h200")
    assert total(h200, s, 8192, "bf16", "cuda") <= total(h100, s, 8192, "bf16", "cuda")


def test_fused_width_matches_the_triton_kernels():
    from recperf.kernels.linear_norm import FUSED_MAX_N

    assert TRITON_FUSED_MAX_N == FUSED_MAX_N


def test_target_candidates_are_the_gpu_backends():
    import torch

    pairs, declined = candidates(site(64), 128, "cuda", torch.bfloat16, for_target=True)
    assert {p.backend for p in pairs} == {"triton", "cuda", "torch", "torchao"}
    assert Candidate("fp8_tensorwise", "torchao") in pairs
    assert "only ['fp8_tensorwise']" in declined[Candidate("fp8_rowwise", "torchao")]
    wide = find_sites(LinearNormStack((64, 8192)))[0]
    pairs, declined = candidates(wide, 128, "cuda", torch.bfloat16, for_target=True)
    assert "exceeds the Triton kernel's limit" in declined[Candidate("bf16", "triton")]


def test_committed_results_replace_the_model_for_their_exact_case(tmp_path):
    rows = [
        {
            "case": "linear_norm fp8_rowwise fwd bfloat16 M=128 K=64 N=64",
            "variant": "triton",
            "median_ms": 0.010,
        },
        {
            "case": "linear_norm fp8_rowwise fwd+bwd bfloat16 M=128 K=64 N=64",
            "variant": "triton",
            "median_ms": 0.035,
        },
        {
            "case": "linear_norm bf16 fwd bfloat16 M=128 K=64 N=64",
            "variant": "triton",
            "median_ms": 0.020,
        },
    ]
    (tmp_path / "run.json").write_text(
        json.dumps({"meta": {"device": "NVIDIA H100 80GB HBM3"}, "rows": rows})
    )
    (tmp_path / "other.json").write_text(
        json.dumps({"meta": {"device": "NVIDIA H200"}, "rows": rows})
    )
    # files and rows that are not results are skipped, whatever is wrong with them
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "latin1.json").write_bytes('{"meta": "caf\xe9"}'.encode("latin-1"))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "a_list.json").write_text("[1, 2]")
    h100 = {"device": "H100"}
    (tmp_path / "bad_rows.json").write_text(json.dumps({"meta": h100, "rows": {"a": 1}}))
    odd = [3, {**rows[2], "median_ms": "fast"}, {**rows[2], "median_ms": float("nan")}]
    (tmp_path / "odd_rows.json").write_text(json.dumps({"meta": h100, "rows": odd}))
    target = Target("h100", results_dir=tmp_path)
    s = site(64)
    times, sources = target.times(s, 128, Candidate("fp8_rowwise", "triton"), None)
    assert times == pytest.approx({"forward": 10e-6, "backward": 25e-6})
    assert sources["forward"].startswith("run.json (NVIDIA H100")
    times, sources = target.times(s, 128, Candidate("bf16", "triton"), None)  # fwd only
    assert times["forward"] == pytest.approx(20e-6) and "cost model" in sources["dgrad"]
    times, sources = target.times(s, 256, Candidate("bf16", "triton"), None)  # other M
    assert set(sources.values()) == {"cost model (h100)"}
    assert "3 committed result rows for h100" in target.description


def test_unknown_target():
    with pytest.raises(
        ValueError, match=r"target must be one of \('current', 'h100', 'h200'\), got 'a100'"
    ):
        timing_source("a100")
