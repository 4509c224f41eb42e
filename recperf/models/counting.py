"""Parameter counts and forward FLOPs per example of a model.

FLOPs count the matrix work of what actually runs (2 per multiply-add), observed by
forward hooks on one batch: linear layers (nn.Linear, LinearNorm, GroupedLinearNorm),
FM interactions (pairwise: 2 d per pair; projected: 4 n d k, X^T . Y then X . T),
attention cores (4 Lq Lk d over all heads: Q K^T and A V), the personalized FFN's
per-example GEMM (2 L d^2) and convolutions. Embedding lookups, norms, activations and
other elementwise work are not counted. A training step costs about 3x the forward.
"""

from __future__ import annotations

import torch
from torch import nn

from recperf.models.attention import MultiHeadAttention
from recperf.models.batch import Batch, FeatureSpec
from recperf.models.interformer import PersonalizedFFN
from recperf.nn import FMInteraction, GroupedLinearNorm, LinearNorm


def param_counts(model: nn.Module) -> dict[str, int]:
    """{"embedding": rows x dim of every table, "dense": every other parameter, "total"}."""
    embedding = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, nn.EmbeddingBag | nn.Embedding)
        for p in m.parameters(recurse=False)
    )
    total = sum(p.numel() for p in model.parameters())
    return {"embedding": embedding, "dense": total - embedding, "total": total}


def _flops(module: nn.Module, args: tuple, out) -> int:
    """FLOPs of one call of a counted module, over the whole batch."""
    x = args[0]
    if isinstance(module, GroupedLinearNorm):
        return 2 * x.numel() * module.out_features
    if isinstance(module, LinearNorm | nn.Linear):
        return 2 * x.numel() * module.out_features
    if isinstance(module, FMInteraction):
        B, n, d = x.shape
        if module.mode == "pairwise":
            return 2 * B * d * module.out_shape[0]
        return 4 * B * n * d * module.rank
    if isinstance(module, MultiHeadAttention):
        kv = args[1] if len(args) > 1 and args[1] is not None else x
        return 4 * x.shape[0] * x.shape[1] * kv.shape[1] * module.dim
    if isinstance(module, PersonalizedFFN):
        B, L, d = x.shape
        return 2 * B * L * d * d
    if isinstance(module, nn.Conv1d):
        k = module.kernel_size[0]
        return 2 * out.numel() * (module.in_channels // module.groups) * k
    return 0


COUNTED = (nn.Linear, LinearNorm, GroupedLinearNorm, FMInteraction, MultiHeadAttention)
COUNTED += (PersonalizedFFN, nn.Conv1d)


@torch.no_grad()
def flops_per_example(model: nn.Module, batch: Batch | None = None) -> int:
    """Forward FLOPs per example (module docstring), measured on ``batch`` (default: two
    random rows of the model's spec, sequences at full length)."""
    if batch is None:
        batch = example_batch(model.spec, 2, full_sequences=True)
    total = 0

    def hook(module, args, out):
        nonlocal total
        total += _flops(module, args, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COUNTED)]
    try:
        model(batch)
    finally:
        for h in handles:
            h.remove()
    return total // batch.size


def example_batch(
    spec: FeatureSpec, size: int, seed: int = 0, full_sequences: bool = False
) -> Batch:
    """``size`` random single-hot rows of ``spec`` with labels."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.arange(size)
    ids = tuple(torch.randint(0, c, (size,), generator=g) for c in spec.cardinalities)
    seq_ids, seq_lengths = [], []
    for s in spec.sequences:
        seq_ids.append(torch.randint(0, s.vocab, (size, s.max_len), generator=g))
        if full_sequences:
            seq_lengths.append(torch.full((size,), s.max_len))
        else:
            seq_lengths.append(torch.randint(1, s.max_len + 1, (size,), generator=g))
    return Batch(
        torch.randn(size, spec.num_dense, generator=g),
        ids,
        tuple(offsets for _ in ids),
        torch.randint(0, 2, (size,), generator=g).float(),
        tuple(seq_ids),
        tuple(seq_lengths),
    )
