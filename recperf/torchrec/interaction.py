"""torchrec's DLRM ``InteractionArch`` on ``recperf.fm_pairwise``: the same constructor,
forward and output ([dense || pairwise dots of [dense, sparse...] in triu order]), so a
DLRM user changes one import."""

from __future__ import annotations

import torch
from torch import nn

from recperf.ops.fm import fm_pairwise


class InteractionArch(nn.Module):
    """dense [B, D], sparse [B, F, D] -> [B, D + F + F choose 2]."""

    def __init__(self, num_sparse_features: int, backend: str = "auto") -> None:
        super().__init__()
        self.F, self.backend = num_sparse_features, backend

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        if self.F <= 0:
            return dense_features
        if sparse_features.dim() != 3 or sparse_features.shape[1] != self.F:
            raise ValueError(
                f"sparse_features must be [B, F={self.F}, D], got {tuple(sparse_features.shape)}"
            )
        B, _, D = sparse_features.shape
        if dense_features.shape != (B, D):
            raise ValueError(
                f"dense_features must be [B, D] = [{B}, {D}], got {tuple(dense_features.shape)}"
            )
        combined = torch.cat((dense_features.unsqueeze(1), sparse_features), dim=1)
        return torch.cat((dense_features, fm_pairwise(combined, backend=self.backend)), dim=1)
