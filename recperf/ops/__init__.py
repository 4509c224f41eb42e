"""The public op API: typed wrappers over ``torch.ops.recperf.*``.

Importing this package registers every op's device kernels, fake kernels and autograd.
"""

from recperf.ops.a2a import permute_chunks
from recperf.ops.fm import fm_pairwise, fm_projected, fm_projected_norm
from recperf.ops.fp8 import fp8_gemm, quantize_fp8, quantize_fp8_transposed
from recperf.ops.linear_norm import grouped_linear_norm, linear_norm
from recperf.ops.recipes import RECIPES

__all__ = [
    "RECIPES",
    "fm_pairwise",
    "fm_projected",
    "fm_projected_norm",
    "fp8_gemm",
    "grouped_linear_norm",
    "linear_norm",
    "permute_chunks",
    "quantize_fp8",
    "quantize_fp8_transposed",
]
