"""bench/collect_gpu_results.py: which backends a device run validated, from test ids."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("collect", ROOT / "bench" / "collect_gpu_results.py")
collect = importlib.util.module_from_spec(spec)
spec.loader.exec_module(collect)


def outcome(name, state="passed"):
    return {"name": name, "state": state}


def test_a_backend_passes_an_op_only_when_every_test_of_it_passed():
    outcomes = [
        outcome("test_gpu_forward_backward[triton-fm_pairwise-float32-(1, 1, 1, 1)]"),
        outcome("test_gpu_forward_backward[triton-fm_pairwise-bfloat16-(3, 7, 13, 3)]"),
        outcome("test_gpu_forward_backward[cuda-fm_pairwise-float32-(1, 1, 1, 1)]"),
        outcome("test_gpu_forward_backward[cuda-fm_pairwise-bfloat16-(3, 7, 13, 3)]", "failed"),
        outcome("test_gpu_linear_norm[triton-linear_norm-fp8_rowwise-layer]"),
        outcome("test_gpu_linear_norm[triton-grouped_linear_norm-fp8_rowwise-layer]", "skipped"),
        outcome("test_gpu_fp8_gemm[scaled_mm-fp8_gemm-row]"),
        outcome("test_gpu_compile_fullgraph[triton]"),
        outcome("test_gpu_compile_fullgraph[cuda]"),
    ]
    assert collect.passed_backends(outcomes) == {
        "fm_pairwise_fwd": ["triton"],
        "fm_pairwise_bwd": ["triton"],
        "linear_norm_fwd": ["triton"],
        "linear_norm_bwd": ["triton"],
        "fp8_gemm": ["scaled_mm"],
    }


def test_a_failed_compile_test_fails_the_backend():
    outcomes = [
        outcome("test_gpu_forward_backward[triton-fm_projected-float32-(1, 1, 1, 1)]"),
        outcome("test_gpu_compile_fullgraph[triton]", "failed"),
    ]
    assert collect.passed_backends(outcomes) == {}
