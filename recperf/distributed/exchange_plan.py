"""Validation and planning of an all-to-all, before anything is exchanged.

Every rank describes its call (split sizes, rows, dtype, row size, codec, and whether its
own arguments are valid) in one int64 vector; one ``all_gather`` gives every rank every
vector, and every rank then runs the same checks on the same matrix. So a bad call raises
the same ``ValueError`` on every rank, and no rank is left waiting in an exchange its peers
never join. The gathered split matrix is also what the hierarchical exchange needs: a rank
forwards other ranks' rows, so it must know their sizes.

Cost: one all_gather of W x (2W + 9) int64 per call (32 KiB at W = 64; 16 MiB at W = 1024,
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

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from recperf.ops.a2a_backends import BYTE_DTYPES

DTYPE_NAMES = sorted(str(d).removeprefix("torch.") for d in BYTE_DTYPES)
_DTYPE_ID = {getattr(torch, name): i for i, name in enumerate(DTYPE_NAMES)}

# Header of a rank's vector, then W input splits, then W output splits.
HEADER = (
    "code",
    "arg0",
    "arg1",
    "in_rows",
    "out_rows",
    "row_elems",
    "dtype",
    "codec",
    "unused",
)
_H = len(HEADER)

# Local problems: code -> message (formatted with W, a = arg0, b = arg1, dtype names).
LOCAL_ERRORS = {
    1: "input must be a tensor of rank >= 1 ([rows, ...])",
    2: "output must be a tensor of rank >= 1 ([rows, ...])",
    3: "input and output must have the same dtype, got {da} and {db}",
    4: "input and output rows must have the same number of elements, got {a} and {b}",
    5: "input_split_sizes must have one entry per rank ({W}), got {a}",
    6: "output_split_sizes must have one entry per rank ({W}), got {a}",
    7: "input_split_sizes must be >= 0, got input_split_sizes[{a}] = {b}",
    8: "output_split_sizes must be >= 0, got output_split_sizes[{a}] = {b}",
    9: "input_split_sizes sum to {a} but input has {b} rows",
    10: "output_split_sizes sum to {a} but output has {b} rows",
    11: "input has {a} rows, not divisible by the world size {W} "
    "(input_split_sizes=None splits it equally)",
    12: "output has {a} rows, not divisible by the world size {W} "
    "(output_split_sizes=None splits it equally)",
    13: "input and output must be on the same device",
    14: "input_split_sizes must be a sequence of integers",
    15: "output_split_sizes must be a sequence of integers",
    16: "compress={codec!r} needs float32, bfloat16 or float16 rows, got {da}",
    17: "input has a dtype the exchange does not know: {da}",
    18: "its arguments could not be read (an unexpected error; see that rank's traceback)",
}


class _LocalError(Exception):
    def __init__(self, code: int, a: int = 0, b: int = 0) -> None:
        super().__init__(code)
        self.code, self.a, self.b = code, a, b


def _as_splits(splits, rows: int, world: int, which: str) -> list[int]:
    """Validated split list of one side (a _LocalError names what is wrong)."""
    out_side = which == "output"
    if splits is None:
        if rows % world:
            raise _LocalError(12 if out_side else 11, rows)
        return [rows // world] * world
    try:
        values = splits.tolist() if isinstance(splits, torch.Tensor) else list(splits)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise TypeError
    except TypeError:
        raise _LocalError(15 if out_side else 14) from None
    if len(values) != world:
        raise _LocalError(6 if out_side else 5, len(values))
    for j, v in enumerate(values):
        if v < 0:
            raise _LocalError(8 if out_side else 7, j, v)
    if sum(values) != rows:
        raise _LocalError(10 if out_side else 9, sum(values), rows)
    return values


def _row_elems(t: torch.Tensor) -> int:
    n = 1
    for s in t.shape[1:]:
        n *= s
    return n


def describe(input, output, input_splits, output_splits, world: int, codec) -> list[int]:
    """This rank's vector (never raises: a problem becomes a code every rank will see).
    ``output`` None: the functional form, whose output has input's dtype and row size and
    sum(output_splits) rows (input's rows when output_splits is None)."""
    head = dict.fromkeys(HEADER, 0)
    ins, outs = [0] * world, [0] * world
    try:
        if not isinstance(input, torch.Tensor) or input.dim() < 1:
            raise _LocalError(1)
        head["dtype"] = _DTYPE_ID.get(input.dtype, -1)
        head["row_elems"] = _row_elems(input)
        head["codec"] = codec.code
        head["in_rows"] = input.shape[0]
        if head["dtype"] < 0:
            raise _LocalError(17, head["dtype"])
        if not codec.accepts(input.dtype):
            raise _LocalError(16, head["dtype"])
        if output is None:
            out_rows = input.shape[0]
            if output_splits is not None:
                try:
                    out_rows = sum(int(v) for v in output_splits)
                except (TypeError, ValueError):
                    raise _LocalError(15) from None
        else:
            if not isinstance(output, torch.Tensor) or output.dim() < 1:
                raise _LocalError(2)
            if output.dtype != input.dtype:
                raise _LocalError(3, head["dtype"], _DTYPE_ID.get(output.dtype, -1))
            if _row_elems(output) != head["row_elems"]:
                raise _LocalError(4, head["row_elems"], _row_elems(output))
            if output.device != input.device:
                raise _LocalError(13)
            out_rows = output.shape[0]
        head["out_rows"] = out_rows
        ins = _as_splits(input_splits, input.shape[0], world, "input")
        outs = _as_splits(output_splits, out_rows, world, "output")
    except _LocalError as e:
        head["code"], head["arg0"], head["arg1"] = e.code, e.a, e.b
        ins, outs = [0] * world, [0] * world
    except Exception:  # reported by every rank below; this rank's peers must not hang
        traceback.print_exc()
        head["code"] = 18
        ins, outs = [0] * world, [0] * world
    return [head[k] for k in HEADER] + ins + outs


def _dtype_name(i: int) -> str:
    return DTYPE_NAMES[i] if 0 <= i < len(DTYPE_NAMES) else "an unknown dtype"


def check_matrix(rows: list[list[int]], what: str, codec_names: Sequence[str]) -> None:
    """The checks every rank runs on the gathered vectors; raises the same ValueError."""
    W = len(rows)
    field = {name: i for i, name in enumerate(HEADER)}
    bad = [r for r in range(W) if rows[r][field["code"]]]
    if bad:
        r = bad[0]
        v = rows[r]
        a, b = v[field["arg0"]], v[field["arg1"]]
        message = LOCAL_ERRORS[v[field["code"]]].format(
            W=W,
            a=a,
            b=b,
            da=_dtype_name(a),
            db=_dtype_name(b),
            codec=codec_names[v[field["codec"]]],
        )
        others = f" (ranks {bad} have invalid arguments)" if len(bad) > 1 else ""
        raise ValueError(f"{what}: rank {r}: {message}{others}")
    for name, meaning in (
        ("codec", "compress"),
        ("dtype", "dtype"),
        ("row_elems", "elements per row"),
    ):
        values = [rows[r][field[name]] for r in range(W)]
        if len(set(values)) != 1:
            if name == "dtype":
                values = [_dtype_name(v) for v in values]
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


def gather_rows(
    vector: list[int], group: dist.ProcessGroup, device: torch.device
) -> list[list[int]]:
    mine = torch.tensor(vector, dtype=torch.int64, device=device)
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, mine, group=group)
    return torch.stack(every).cpu().tolist()


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
