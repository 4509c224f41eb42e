"""recperf: a kernel-first performance toolkit for large recommendation models.

``import recperf`` loads the compiled library and registers every ``torch.ops.recperf``
op with its device kernels, fake kernel and autograd.
"""

import torch  # noqa: F401  (loads libtorch, which recperf._C links against)

from recperf import (
    _C,  # noqa: F401  (loads the op library: schemas and C++/CUDA kernels)
    nn,
    ops,
)
from recperf.dispatch import use_backend
from recperf.ops import (
    fm_pairwise,
    fm_projected,
    fm_projected_norm,
    fp8_gemm,
    grouped_linear_norm,
    linear_norm,
    permute_chunks,
    quantize_fp8,
    quantize_fp8_transposed,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "fm_pairwise",
    "fm_projected",
    "fm_projected_norm",
    "fp8_gemm",
    "grouped_linear_norm",
    "linear_norm",
    "nn",
    "ops",
    "permute_chunks",
    "quantize_fp8",
    "quantize_fp8_transposed",
    "use_backend",
]
