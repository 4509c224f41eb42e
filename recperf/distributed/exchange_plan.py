"""Validation and planning of an all-to-all, before anything is exchanged.

Each rank first checks its own call (:func:`describe`: tensors, devices, dtypes, memory,
split sizes); then one ``all_gather`` (:func:`recperf.distributed.agreement.agree`) tells
every rank whether any rank's call was bad, in which case all raise the lowest failing
rank's error, and otherwise gives every rank every rank's description (split sizes, rows,
dtype, row size, codec) in one int64 vector each. Every rank then runs the same cross-rank
checks on the same matrix (:func:`check_matrix`). So a bad call raises the same error on
every rank, and no rank is left waiting in an exchange its peers never join. The gathered
split matrix is also what the hierarchical exchange needs: a rank forwards other ranks'
rows, so it must know their sizes.

Cost: one all_gather of W x (2W + 6) int64 per call (32 KiB at W = 64; 16 MiB at W = 1024,
where gathering only the host's rows plus an error flag would be the next step).

Chunk orders (W = H x L, rank r = h L + l; S[i][j] = rows rank i sends rank j):
  step 1, inside host h: rank (h, l) sends local peer m its rows for (0, m), (1, m), ...,
    (H-1, m): its input's W chunks (in destination order d = h' L + m) are packed with
    order [h' L + m for m in range(L) for h' in range(H)]. It receives, from each local
    peer m' in turn, S[(h, m')][(h', l)] rows for h' = 0..H-1: chunk k = m' H + h'.
  step 2, on rail l: rank (h, l) sends host h' the rows from every (h, m') to (h', l):
    chunks k = m' H + h' packed with order [m' H + h' for h' in range(H) for m' in range(L)].
    It receives, from each rail peer h'' in turn, rows from (h'', m') for m' = 0..L-1,
    that is from sources h'' L + m' in ascending order: exactly all_to_all_single's output
    layout, so step 3 (the final local permutation) is the identity and step 2 receives
    straight into the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from recperf.distributed.agreement import check_int
from recperf.distributed.compress import Codec, get_codec
from recperf.ops.a2a_backends import BYTE_DTYPES

DTYPE_NAMES = sorted(str(d).removeprefix("torch.") for d in BYTE_DTYPES)
_DTYPE_ID = {getattr(torch, name): i for i, name in enumerate(DTYPE_NAMES)}

# A rank's vector: this header, then W input splits, then W output splits.
HEADER = ("in_rows", "out_rows", "row_elems", "dtype", "codec")
_H = len(HEADER)


def vector_size(world: int) -> int:
    return _H + 2 * world


def _as_splits(splits, rows: int, world: int, name: str) -> list[int]:
    """The validated split list ``name`` of a side with ``rows`` rows."""
    if splits is None:
        if rows % world:
            side = name.removesuffix("_split_sizes")
            raise ValueError(
                f"{side} has {rows} rows, not divisible by the world size {world} "
                f"({name}=None splits it equally)"
            )
        return [rows // world] * world
    values = split_values(splits, name)
    if len(values) != world:
        raise ValueError(f"{name} must have one entry per rank ({world}), got {len(values)}")
    if sum(values) != rows:
        side = name.removesuffix("_split_sizes")
        raise ValueError(f"{name} sum to {sum(values)} but {side} has {rows} rows")
    return values


def split_values(splits, name: str) -> list[int]:
    """Split sizes (a sequence or 1-D tensor of integers, each in [0, 2**63)) as ints."""
    if isinstance(splits, torch.Tensor):
        if splits.dim() != 1 or splits.dtype.is_floating_point or splits.dtype.is_complex:
            raise TypeError(
                f"{name} must be a 1-D integer tensor or a sequence of integers, got a "
                f"{splits.dim()}-D {splits.dtype} tensor"
            )
        splits = splits.tolist()
    if isinstance(splits, (str, bytes)) or not isinstance(splits, Sequence):
        raise TypeError(f"{name} must be a sequence of integers, got {type(splits).__name__}")
    values = [check_int(v, f"{name}[{j}]") for j, v in enumerate(splits)]
    check_int(sum(values), f"sum({name})")
    return values


def _row_elems(t: torch.Tensor) -> int:
    return math.prod(t.shape[1:])


def _byte_span(t: torch.Tensor) -> tuple[int, int] | None:
    """[first, last + 1) bytes t's elements occupy (None when it has none)."""
    if t.numel() == 0:
        return None
    extent = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return t.data_ptr(), t.data_ptr() + (extent + 1) * t.element_size()


def may_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a and b may share memory: their byte spans intersect (interleaved but
    disjoint views count as overlapping: refused, never computed wrong)."""
    sa, sb = _byte_span(a), _byte_span(b)
    return sa is not None and sb is not None and sa[0] < sb[1] and sb[0] < sa[1]


def _check_tensor(t, name: str, check_device: Callable[[torch.Tensor, str], None]) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() < 1:
        raise ValueError(f"{name} must be a tensor of rank >= 1 ([rows, ...]), got a 0-D one")
    check_device(t, name)


def describe(
    input,
    output,
    input_splits,
    output_splits,
    world: int,
    compress,
    check_device: Callable[[torch.Tensor, str], None],
) -> tuple[list[int], Codec]:
    """This rank's vector and codec, or a ValueError / TypeError naming what is wrong with
    this rank's call. ``output`` None: the functional form, whose output has input's dtype
    and row size and sum(output_splits) rows (input's rows when output_splits is None).
    ``check_device(t, name)`` raises unless the group can take t."""
    codec = get_codec(compress)
    _check_tensor(input, "input", check_device)
    if input.dtype not in _DTYPE_ID:
        raise TypeError(f"input has a dtype the exchange does not know: {input.dtype}")
    if not codec.accepts(input.dtype):
        raise TypeError(
            f"compress={codec.name!r} needs float32, bfloat16 or float16 rows, got "
            f"{dtype_name(_DTYPE_ID[input.dtype])}"
        )
    if output is None:
        out_rows = input.shape[0]
        if output_splits is not None:
            out_rows = sum(split_values(output_splits, "output_split_sizes"))
    else:
        _check_tensor(output, "output", check_device)
        if output.dtype != input.dtype:
            raise TypeError(
                f"input and output must have the same dtype, got "
                f"{dtype_name(_DTYPE_ID[input.dtype])} and "
                f"{dtype_name(_DTYPE_ID.get(output.dtype, -1))}"
            )
        if _row_elems(output) != _row_elems(input):
            raise ValueError(
                f"input and output rows must have the same number of elements, got "
                f"{_row_elems(input)} and {_row_elems(output)}"
            )
        if output.device != input.device:
            raise ValueError(
                f"input and output must be on the same device, got {input.device} and "
                f"{output.device}"
            )
        if output.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "output requires grad, and the exchange writes it in place; use "
                "hierarchical_all_to_all (differentiable) instead"
            )
        if torch._debug_has_internal_overlap(output) == 1:
            raise ValueError(
                "output has elements that share memory (an expanded, stride-0 tensor?): it "
                "cannot be written; pass a tensor of its own"
            )
        if may_overlap(output, input):
            raise ValueError(
                "output and input share memory (output aliases input?): the exchange "
                "needs an output of its own"
            )
        out_rows = output.shape[0]
    ins = _as_splits(input_splits, input.shape[0], world, "input_split_sizes")
    outs = _as_splits(output_splits, out_rows, world, "output_split_sizes")
    head = {
        "in_rows": input.shape[0],
        "out_rows": out_rows,
        "row_elems": _row_elems(input),
        "dtype": _DTYPE_ID[input.dtype],
        "codec": codec.code,
    }
    return [head[k] for k in HEADER] + ins + outs, codec


def dtype_name(i: int) -> str:
    return DTYPE_NAMES[i] if 0 <= i < len(DTYPE_NAMES) else "an unknown dtype"


def dtype_id(dtype: torch.dtype) -> int:
    """A dtype as an int every rank reads alike (-1: one the exchange does not know)."""
    return _DTYPE_ID.get(dtype, -1)


def check_matrix(rows: list[list[int]], what: str, codec_names: Sequence[str]) -> None:
    """The cross-rank checks every rank runs on the gathered vectors (each valid on its
    own rank); raises the same ValueError on every rank."""
    W = len(rows)
    field = {name: i for i, name in enumerate(HEADER)}
    for name, meaning in (
        ("codec", "compress"),
        ("dtype", "dtype"),
        ("row_elems", "elements per row"),
    ):
        values = [rows[r][field[name]] for r in range(W)]
        if len(set(values)) != 1:
            if name == "dtype":
                values = [dtype_name(v) for v in values]
            elif name == "codec":
                values = [codec_names[v] for v in values]
            raise ValueError(f"{what}: the ranks disagree on the {meaning}: per rank {values}")
    for i in range(W):
        for j in range(W):
            sent = rows[i][_H + j]
            expected = rows[j][_H + W + i]
            if sent != expected:
                raise ValueError(
                    f"{what}: rank {i} sends {sent} rows to rank {j} (its input_split_sizes[{j}])"
                    f" but rank {j} expects {expected} rows from rank {i} (its "
                    f"output_split_sizes[{i}])"
                )


@dataclass(frozen=True)
class ExchangePlan:
    """Who sends whom how many rows (splits[i][j]: rank i to rank j), seen from one rank of
    an H x L topology, and the chunk orders of the hierarchical exchange (module docstring)."""

    splits: tuple[tuple[int, ...], ...]
    rank: int
    num_hosts: int
    local_size: int

    @property
    def world(self) -> int:
        return len(self.splits)

    @property
    def input_splits(self) -> list[int]:
        return list(self.splits[self.rank])

    @property
    def output_splits(self) -> list[int]:
        return [self.splits[i][self.rank] for i in range(self.world)]

    def reversed(self) -> ExchangePlan:
        """The reverse exchange (the backward pass): splits transposed."""
        W = self.world
        transposed = tuple(tuple(self.splits[j][i] for j in range(W)) for i in range(W))
        return ExchangePlan(transposed, self.rank, self.num_hosts, self.local_size)

    def _rank(self, host: int, local: int) -> int:
        return host * self.local_size + local

    # Step 1: inside the host.
    def intra_pack(self) -> tuple[list[int], list[int]]:
        """(chunk sizes, order) packing the input by local destination, then host."""
        H, L = self.num_hosts, self.local_size
        order = [self._rank(h, m) for m in range(L) for h in range(H)]
        return self.input_splits, order

    def intra_send(self) -> list[int]:
        H, L, r = self.num_hosts, self.local_size, self.rank
        return [sum(self.splits[r][self._rank(h, m)] for h in range(H)) for m in range(L)]

    def intra_recv_chunks(self) -> list[int]:
        """Sizes of the received chunks k = m' H + h': rows from (host, m') to (h', l)."""
        H, L = self.num_hosts, self.local_size
        host, l = divmod(self.rank, L)
        return [
            self.splits[self._rank(host, m)][self._rank(h, l)] for m in range(L) for h in range(H)
        ]

    def intra_recv(self) -> list[int]:
        H, chunks = self.num_hosts, self.intra_recv_chunks()
        return [sum(chunks[m * H : (m + 1) * H]) for m in range(self.local_size)]

    # Step 2: along the rail.
    def rail_pack(self) -> tuple[list[int], list[int]]:
        """(chunk sizes, order) regrouping step 1's output by destination host."""
        H, L = self.num_hosts, self.local_size
        return self.intra_recv_chunks(), [m * H + h for h in range(H) for m in range(L)]

    def rail_send(self) -> list[int]:
        H, L, chunks = self.num_hosts, self.local_size, self.intra_recv_chunks()
        return [sum(chunks[m * H + h] for m in range(L)) for h in range(H)]

    def rail_recv(self) -> list[int]:
        L, outs = self.local_size, self.output_splits
        return [sum(outs[h * L : (h + 1) * L]) for h in range(self.num_hosts)]


def plan_from_rows(
    rows: list[list[int]], rank: int, num_hosts: int, local_size: int
) -> ExchangePlan:
    W = len(rows)
    splits = tuple(tuple(rows[i][_H : _H + W]) for i in range(W))
    return ExchangePlan(splits, rank, num_hosts, local_size)
