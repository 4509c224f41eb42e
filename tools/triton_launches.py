"""The launches tools/check_triton_sources.py compiles: every GPU benchmark case of the
registry that the triton backend runs (forward, and backward for fwd+bwd cases), and the
calls of the GPU tests (tests/ops/test_*_gpu.py) with their shapes and dtypes, read from
those test modules. Each driver makes CPU inputs of the real shapes, dtypes and strides and
calls the op with backend="triton" inside triton_capture.capturing(), so only the launches'
specializations are kept; no output is looked at (the kernels do not run)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def _test_module(name: str):
    for folder in (ROOT / "tests", ROOT / "tests" / "ops"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    import importlib
    import os

    module = importlib.import_module(name)
    os.environ.pop("TRITON_INTERPRET", None)  # tests/conftest.py, imported by some, sets it
    return module


@contextlib.contextmanager
def zeros_for_randn():
    """torch.randn -> torch.zeros: the launchers pick every configuration from shapes,
    dtypes, strides and alignment, never from values, and drawing the benchmarks' inputs
    (hundreds of MB) would take most of the check's capture time."""
    randn = torch.randn

    def zeros(*size, generator=None, **kwargs):
        return torch.zeros(*size, **kwargs)

    torch.randn = zeros
    try:
        yield
    finally:
        torch.randn = randn


def _backward(out: torch.Tensor) -> None:
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype))


def bench_calls() -> Iterator[tuple[str, Callable[[], None]]]:
    """(label, call) for each GPU benchmark case that lists the triton backend."""
    from recperf.benchmarks import fm_cases, linear_norm_cases

    cuda = torch.device("cuda")
    for module in (fm_cases, linear_norm_cases):
        for case in module.default_cases(cuda):
            if "triton" not in case.backends(cuda):
                continue

            def call(case=case):
                inputs = case.make_inputs(CPU)
                out = case.op_fn("triton")(inputs)
                if "grad" in inputs:
                    out.backward(inputs["grad"])

            yield f"bench {case.name}", call


def test_calls() -> Iterator[tuple[str, Callable[[], None]]]:
    """(label, call) for the triton calls of the GPU tests."""
    yield from _fm_test_calls()
    yield from _linear_norm_test_calls()
    yield from _fp8_test_calls()
    yield from _a2a_test_calls()


def _fm_test_calls():
    t = _test_module("test_fm_gpu")
    for op in t.OPS:
        for dtype in t.DTYPES:
            for shape in t.SHAPES:

                def call(op=op, dtype=dtype, shape=shape):
                    tensors = [x.requires_grad_(True) for x in t._inputs(shape, dtype, seed=0)]
                    out, _ = t._call(op, tensors, "triton")
                    _backward(out)

                yield f"test {op} {str(dtype)[6:]} {shape}", call

        def strided(op=op):  # test_gpu_non_contiguous's input
            x = torch.randn(4, 24, 9).transpose(1, 2)
            t._call(op, [x, torch.randn(9, 4), torch.randn(36), torch.randn(36)], "triton")

        yield f"test {op} non-contiguous", strided


def _linear_norm_test_calls():
    t = _test_module("test_linear_norm_gpu")
    helpers = _test_module("test_linear_norm")
    import recperf
    from recperf.ops.recipes import RECIPES

    for grouped in (False, True):
        fn = recperf.grouped_linear_norm if grouped else recperf.linear_norm
        for recipe in RECIPES:
            for norm in ("layer", "rms", "none"):
                for i, (M, K, N) in enumerate(t.SHAPES):
                    if grouped and M > 512:  # as the test
                        continue

                    def call(fn=fn, recipe=recipe, norm=norm, i=i, M=M, K=K, N=N, g=grouped):
                        tensors = helpers.make(M, K, N, norm, seed=i, params=i != 0, grouped=3 * g)
                        grad = torch.randn(*tensors[0].shape[:-1], N)
                        helpers.run(fn, tensors, norm, recipe, "triton", grad)

                    op = "grouped_linear_norm" if grouped else "linear_norm"
                    yield f"test {op} {recipe} {norm} {(M, K, N)}", call


def _fp8_test_calls():
    t = _test_module("test_fp8_gpu")
    import recperf
    from recperf.ops.fp8_ref import quantize_fp8_ref

    for dtype in t.QUANTIZE_DTYPES:
        for fp8_dtype in (t.E4M3, t.E5M2):
            for granularity in ("row", "tensor"):
                for transposed in (False, True):

                    def call(dtype=dtype, fp8=fp8_dtype, gran=granularity, tr=transposed):
                        quantize = recperf.quantize_fp8_transposed if tr else recperf.quantize_fp8
                        for seed, (M, K) in enumerate(t.QUANTIZE_SHAPES):
                            x = t.hard_rows(M, K, seed).to(dtype)
                            quantize(x, gran, fp8, backend="triton")

                    what = f"{str(dtype)[6:]} {fp8_dtype} {granularity} transposed={transposed}"
                    yield f"test quantize_fp8 {what}", call
    for granularity in ("row", "tensor"):

        def gemm(gran=granularity):
            for M, N, K in t.GEMM_SHAPES:
                a, sa = quantize_fp8_ref(torch.randn(M, K), gran)
                b, sb = quantize_fp8_ref(torch.randn(N, K), gran)
                bias = torch.randn(N).bfloat16()
                recperf.fp8_gemm(a, sa, b, sb, bias, torch.bfloat16, backend="triton")

        yield f"test fp8_gemm {granularity}", gemm


def _a2a_test_calls():
    t = _test_module("test_a2a_gpu")
    from recperf.ops.a2a import permute_chunks

    for dtype in t.DTYPES:

        def call(dtype=dtype):
            for i, (sizes, trailing) in enumerate(t.CHUNKINGS):
                g = torch.Generator().manual_seed(i)
                x = (torch.randn(sum(sizes), *trailing, generator=g) * 8).to(dtype)
                order = torch.randperm(len(sizes), generator=g)
                permute_chunks(x, torch.tensor(sizes), order, backend="triton")

        yield f"test permute_chunks {str(dtype)[6:]}", call

    def unaligned():  # test_gpu_permute_chunks_unaligned_and_device_metadata's input
        x = torch.randint(0, 255, (50, 23), dtype=torch.uint8)[1:, 1:22]
        sizes, order = torch.tensor([10, 0, 19, 20]), torch.tensor([3, 1, 0, 2])
        permute_chunks(x, sizes, order, backend="triton")

    yield "test permute_chunks unaligned", unaligned
