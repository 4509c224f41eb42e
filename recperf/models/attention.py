"""Multi-head attention (optionally with RoPE) and a post-norm transformer encoder layer
whose two linear-then-norm sites (output projection + residual + LayerNorm, FFN down
projection + residual + LayerNorm) are LinearNorms. Used by DHEN's self-attention module
and by InterFormer's sequence arch and PMA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recperf.models.fields import positive_int
from recperf.nn import LinearNorm


def rope(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding over x [B, h, L, e] (e even), positions 0..L-1."""
    L, e = x.shape[-2], x.shape[-1]
    inv = 1.0 / (10000.0 ** (torch.arange(0, e, 2, device=x.device, dtype=torch.float32) / e))
    angle = torch.arange(L, device=x.device, dtype=torch.float32).unsqueeze(1) * inv
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class MultiHeadAttention(nn.Module):
    """Heads of scaled dot-product attention, before the output projection:
    queries [B, Lq, d] over keys/values [B, Lk, d] (self-attention when ``kv`` is None)
    -> [B, Lq, d]. ``key_mask`` [B, Lk] bool marks the keys that exist."""

    def __init__(self, dim: int, heads: int, use_rope: bool = False) -> None:
        super().__init__()
        positive_int(dim, "dim")
        positive_int(heads, "heads")
        if dim % heads or (use_rope and (dim // heads) % 2):
            raise ValueError(f"dim {dim} must split into {heads} heads (of even size with RoPE)")
        self.dim, self.heads, self.use_rope = dim, heads, use_rope
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, _ = t.shape
        return t.view(B, L, self.heads, self.dim // self.heads).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        source = x if kv is None else kv
        q = self._split(self.q(x))
        k, v = (self._split(t) for t in self.kv(source).chunk(2, dim=-1))
        if self.use_rope:
            q, k = rope(q), rope(k)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.dim)


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (nn.TransformerEncoderLayer's order, ReLU FFN):
    h = LN(x + W_o attn(x)); y = LN(h + W_2 relu(W_1 h)), the two LN sites LinearNorms."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn: int,
        use_rope: bool = False,
        recipe: str = "fp32",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, use_rope)
        self.out = LinearNorm(dim, dim, recipe=recipe, backend=backend)
        self.ff1 = nn.Linear(dim, ffn)
        self.ff2 = LinearNorm(ffn, dim, recipe=recipe, backend=backend)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.out(self.attn(x, key_mask=key_mask), x)
        return self.ff2(F.relu(self.ff1(h)), h)
