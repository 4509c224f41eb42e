"""Compressed payloads for embedding exchange, and their measured error.

Large recommendation training cuts exchange bytes by sending embeddings in a narrower
format than they are computed in. Two codecs, both row by row so a row's payload travels
as one row of the exchange:

* ``"bf16"``: rows cast to bfloat16 (half the bytes of fp32; round-to-nearest-even).
* ``"fp8"``: e4m3 codes with one fp32 scale per embedding vector (per innermost
  dimension: a row [F, D] has F scales), quantized by ``recperf.quantize_fp8(x, "row")``;
  codes and scales share one uint8 payload row (D + 4 bytes per vector of D values), so
  one exchange carries both, and the receiver dequantizes (codes x scale, in fp32).

The exchange itself moves payload bytes exactly, so a compressed exchange's error is the
local round trip's: :func:`compression_error` measures it (relative Frobenius error and
SQNR in dB) without a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CODECS = ("none", "bf16", "fp8")
FLOAT_ROWS = (torch.float32, torch.bfloat16, torch.float16)
FP8 = torch.float8_e4m3fn


def _vectors(trailing: tuple[int, ...]) -> tuple[int, int]:
    """(vectors per row, elements per vector): a row [..., D] holds prod(...) vectors."""
    if not trailing:
        return 1, 1
    return math.prod(trailing[:-1]), trailing[-1]


@dataclass(frozen=True)
class Codec:
    """How rows travel: ``encode`` [R, ...] -> payload rows, ``decode`` back."""

    name: str = "none"

    @property
    def code(self) -> int:
        return CODECS.index(self.name)

    def accepts(self, dtype: torch.dtype) -> bool:
        return self.name == "none" or dtype in FLOAT_ROWS

    def payload_meta(self, trailing: tuple[int, ...], dtype: torch.dtype):
        """(trailing shape, dtype) of the payload rows of rows [*, *trailing] of dtype."""
        if self.name == "bf16":
            return trailing, torch.bfloat16
        if self.name == "fp8":
            vectors, dim = _vectors(trailing)
            return (vectors * (dim + 4),), torch.uint8
        return trailing, dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "none":
            return x
        if self.name == "bf16":
            return x.to(torch.bfloat16)
        from recperf.ops.fp8 import quantize_fp8

        rows = x.shape[0]
        vectors, dim = _vectors(tuple(x.shape[1:]))
        if rows * vectors * dim == 0:
            return x.new_empty((rows, vectors * (dim + 4)), dtype=torch.uint8)
        q, scale = quantize_fp8(x.reshape(rows * vectors, dim), "row", FP8)
        codes = q.view(torch.uint8).reshape(rows, vectors * dim)
        scales = scale.contiguous().view(torch.uint8).reshape(rows, vectors * 4)
        return torch.cat([codes, scales], dim=1)

    def decode(
        self, payload: torch.Tensor, dtype: torch.dtype, trailing: tuple[int, ...]
    ) -> torch.Tensor:
        if self.name == "none":
            return payload
        if self.name == "bf16":
            return payload.to(dtype)
        rows = payload.shape[0]
        vectors, dim = _vectors(trailing)
        if rows * vectors * dim == 0:
            return payload.new_zeros((rows, *trailing), dtype=dtype)
        codes = payload[:, : vectors * dim].contiguous().view(FP8).reshape(rows * vectors, dim)
        scales = payload[:, vectors * dim :].contiguous().view(torch.float32)
        values = codes.to(torch.float32) * scales.reshape(rows * vectors, 1)
        return values.to(dtype).reshape(rows, *trailing)


def get_codec(compress: str | None) -> Codec:
    name = "none" if compress is None else compress
    if name not in CODECS:
        raise ValueError(f"compress must be None, 'bf16' or 'fp8', got {compress!r}")
    return Codec(name)


@dataclass(frozen=True)
class CompressionError:
    """Error of one encode/decode round trip against the original rows."""

    codec: str
    rel_error: float  # ||x_hat - x|| / ||x||
    sqnr_db: float  # 10 log10(||x||^2 / ||x_hat - x||^2); inf when exact
    payload_ratio: float  # payload bytes / original bytes

    def __str__(self) -> str:
        return (
            f"{self.codec}: relative error {self.rel_error:.3g}, SQNR {self.sqnr_db:.1f} dB, "
            f"{self.payload_ratio:.3f}x the bytes"
        )


def compression_error(x: torch.Tensor, compress: str | None) -> CompressionError:
    """The error a compressed exchange of rows x [R, ...] introduces (the exchange is
    exact, so this is the codec's round trip)."""
    codec = get_codec(compress)
    if not codec.accepts(x.dtype):
        raise TypeError(f"compress={compress!r} needs float32, bfloat16 or float16, got {x.dtype}")
    payload = codec.encode(x)
    back = codec.decode(payload, x.dtype, tuple(x.shape[1:]))
    ref = x.detach().double()
    signal = ref.square().sum().item()
    noise = (back.double() - ref).square().sum().item()
    rel = math.sqrt(noise / signal) if signal > 0 else math.sqrt(noise)
    sqnr = math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else -math.inf
    ratio = payload.nbytes / x.nbytes if x.nbytes else 1.0
    return CompressionError(codec.name, rel, sqnr, ratio)
