"""FP8 ops on a CUDA device: quantization bit for bit on every GPU backend, fp8_gemm
against the reference (and torch._scaled_mm). Skipped without a GPU; the CPU paths are
tested in test_fp8.py. Test ids start with backend-op (bench/collect_gpu_results.py)."""

from __future__ import annotations

import pytest
import torch
from numerics import rel_err
from test_fp8 import assert_same_codes, hard_rows

import recperf
from recperf.ops.fp8_ref import quantize_fp8_ref

pytestmark = pytest.mark.gpu

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
# Module-level so that tools/check_triton_sources.py compiles these very launches.
QUANTIZE_SHAPES = [(1, 1), (37, 53), (256, 1024), (4099, 96)]  # (M, K)
QUANTIZE_DTYPES = [torch.float32, torch.bfloat16]
GEMM_SHAPES = [(16, 16, 16), (1000, 512, 256), (2048, 1024, 1024)]  # (M, N, K)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("granularity", ["row", "tensor"])
@pytest.mark.parametrize("fp8_dtype", [E4M3, E5M2], ids=["e4m3", "e5m2"])
@pytest.mark.parametrize("dtype", QUANTIZE_DTYPES, ids=str)
@pytest.mark.parametrize("op", ["quantize_fp8"])
@pytest.mark.parametrize("backend", ["cuda", "triton", "torch"])
def test_gpu_quantize_bit_exact(backend, op, dtype, fp8_dtype, granularity, transposed):
    quantize = recperf.quantize_fp8_transposed if transposed else recperf.quantize_fp8
    for seed, (M, K) in enumerate(QUANTIZE_SHAPES):
        x = hard_rows(M, K, seed).to(dtype)
        x[min(3, M - 1), 0] = float("nan") if seed == 2 else x[min(3, M - 1), 0]
        q, s = quantize(x.cuda(), granularity, fp8_dtype, backend=backend)
        ref = quantize_fp8_ref(x.t() if transposed else x, granularity, fp8_dtype)
        assert_same_codes(q.cpu(), s.cpu(), *ref, f"{backend} {(M, K)}")


@pytest.mark.parametrize("granularity", ["row", "tensor"])
@pytest.mark.parametrize("op", ["fp8_gemm"])
@pytest.mark.parametrize("backend", ["triton", "scaled_mm", "torch"])
def test_gpu_fp8_gemm(backend, op, granularity):
    g = torch.Generator().manual_seed(0)
    for M, N, K in GEMM_SHAPES:
        a, sa = quantize_fp8_ref(torch.randn(M, K, generator=g), granularity)
        b, sb = quantize_fp8_ref(torch.randn(N, K, generator=g), granularity)
        bias = torch.randn(N, generator=g).bfloat16()
        dev = [t.cuda() for t in (a, sa, b, sb, bias)]
        out = recperf.fp8_gemm(*dev, torch.bfloat16, backend=backend)
        ref = (a.double() @ b.double().t()) * (
            sa.double().reshape(-1, 1) if sa.dim() else sa.double()
        )
        ref = ref * (sb.double().reshape(1, -1) if sb.dim() else sb.double()) + bias.double()
        assert rel_err(out.cpu(), ref) <= 4e-3
