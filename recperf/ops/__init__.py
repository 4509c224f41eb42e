"""The public op API: typed wrappers over ``torch.ops.recperf.*``.

Importing this package registers every op's device kernels, fake kernels and autograd.
"""

from recperf.ops.fm import fm_pairwise, fm_projected, fm_projected_norm

__all__ = ["fm_pairwise", "fm_projected", "fm_projected_norm"]
