"""The chunk orders of the hierarchical exchange, in one process: every rank's steps are
simulated with the real permute_chunks op and plain list exchanges, for many H x L and
random splits, and each rank's result must equal all_to_all_single's layout bit for bit.
Also the validation of the gathered call descriptions (the errors every rank raises)."""

from __future__ import annotations

import random

import pytest
import torch

from recperf.distributed.compress import Codec
from recperf.distributed.exchange_plan import check_matrix, describe, plan_from_rows
from recperf.ops.a2a import permute_chunks

CODEC_NAMES = ("none", "bf16", "fp8")


def random_splits(W: int, rng: random.Random, zero_fraction: float = 0.3) -> list[list[int]]:
    return [
        [0 if rng.random() < zero_fraction else rng.randint(1, 4) for _ in range(W)]
        for _ in range(W)
    ]


def flat_result(inputs, splits, dst):
    """all_to_all_single's output of rank dst: chunks from sources 0..W-1 in order."""
    pieces = []
    for src, x in enumerate(inputs):
        start = sum(splits[src][:dst])
        pieces.append(x[start : start + splits[src][dst]])
    return torch.cat(pieces)


def exchange(sends: dict, sizes: dict, members: list[int]) -> dict:
    """One all_to_all_single inside a group: sends[r] split by sizes[r] (one per member);
    rank r receives the pieces addressed to it, in member order."""
    pieces = {r: list(sends[r].split(sizes[r])) for r in members}
    return {r: torch.cat([pieces[s][i] for s in members]) for i, r in enumerate(members)}


def simulate(H: int, L: int, splits, inputs):
    W = H * L
    rows = [[0] * 9 + splits[r] + [splits[i][r] for i in range(W)] for r in range(W)]
    plans = [plan_from_rows(rows, r, H, L) for r in range(W)]
    t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    packed, send1 = {}, {}
    for r in range(W):
        sizes, order = plans[r].intra_pack()
        packed[r] = permute_chunks(inputs[r], t(sizes), t(order))
        send1[r] = plans[r].intra_send()
    step1 = {}
    for h in range(H):
        step1.update(exchange(packed, send1, [h * L + m for m in range(L)]))
    for r in range(W):
        assert step1[r].shape[0] == sum(plans[r].intra_recv())
    regrouped, send2 = {}, {}
    for r in range(W):
        sizes, order = plans[r].rail_pack()
        regrouped[r] = permute_chunks(step1[r], t(sizes), t(order))
        send2[r] = plans[r].rail_send()
    out = {}
    for l in range(L):
        out.update(exchange(regrouped, send2, [h * L + l for h in range(H)]))
    return out, plans


@pytest.mark.parametrize("H,L", [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2), (2, 3), (4, 2), (3, 4)])
def test_chunk_orders_give_flat_layout(H, L):
    rng = random.Random(H * 10 + L)
    W = H * L
    for trial in range(3):
        splits = random_splits(W, rng, zero_fraction=[0.0, 0.3, 0.8][trial])
        inputs = [
            torch.randn(sum(splits[r]), 2, 3, generator=torch.Generator().manual_seed(r))
            for r in range(W)
        ]
        out, plans = simulate(H, L, splits, inputs)
        for r in range(W):
            expected = flat_result(inputs, splits, r)
            assert torch.equal(out[r], expected), f"rank {r} of {H}x{L}, splits {splits}"
            assert plans[r].rail_recv() == [
                sum(plans[r].output_splits[h * L : (h + 1) * L]) for h in range(H)
            ]


def test_reversed_plan_transposes():
    rows = [[0] * 9 + [1, 2] + [1, 3], [0] * 9 + [3, 4] + [2, 4]]
    plan = plan_from_rows(rows, 0, 1, 2)
    assert plan.input_splits == [1, 2] and plan.output_splits == [1, 3]
    back = plan.reversed()
    assert back.input_splits == [1, 3] and back.output_splits == [1, 2]


# ------------------------------------------------------------------------------------
# Validation of the gathered matrix (what every rank raises alike)


def describe_all(calls, codec=None):
    W = len(calls)
    return [describe(*call, W, codec or Codec()) for call in calls]


def test_valid_calls_pass():
    x = torch.zeros(3, 2)
    rows = describe_all(
        [(x, torch.zeros(3, 2), [1, 2], [1, 2]), (x, torch.zeros(3, 2), [2, 1], [2, 1])]
    )
    check_matrix(rows, "a2a", CODEC_NAMES)


@pytest.mark.parametrize(
    "calls,pattern",
    [
        (
            [
                (torch.zeros(3), torch.zeros(3), [1, 1], [1, 2]),
                (torch.zeros(3), torch.zeros(3), [2, 1], [1, 2]),
            ],
            r"rank 0: input_split_sizes sum to 2 but input has 3 rows",
        ),
        (
            [
                (torch.zeros(3), torch.zeros(3), [1, 2], [1, 2]),
                (torch.zeros(3), torch.zeros(2), [2, 1], [2, 0]),
            ],
            r"rank 1 sends 1 rows to rank 1 \(its input_split_sizes\[1\]\) but rank 1 expects 0 "
            r"rows from rank 1 \(its output_split_sizes\[1\]\)",
        ),
        (
            [
                (torch.zeros(3), torch.zeros(3), [1, 2, 0], [1, 2]),
                (torch.zeros(3), torch.zeros(3), [1, 2], [2, 1]),
            ],
            r"rank 0: input_split_sizes must have one entry per rank \(2\), got 3",
        ),
        (
            [
                (torch.zeros(3), torch.zeros(3), [-1, 4], [1, 2]),
                (torch.zeros(3), torch.zeros(3), [2, 1], [4, -1]),
            ],
            r"rank 0: input_split_sizes must be >= 0, got input_split_sizes\[0\] = -1 \(ranks \[0, 1\]",
        ),
        (
            [
                (torch.zeros(3), torch.zeros(3), None, None),
                (torch.zeros(4), torch.zeros(4), None, None),
            ],
            r"rank 0: input has 3 rows, not divisible by the world size 2",
        ),
        (
            [
                (torch.zeros(2), torch.zeros(2, dtype=torch.int32), None, None),
                (torch.zeros(2), torch.zeros(2), None, None),
            ],
            r"rank 0: input and output must have the same dtype, got float32 and int32",
        ),
        (
            [
                (torch.zeros(2, 3), torch.zeros(2, 3), None, None),
                (torch.zeros(2, 4), torch.zeros(2, 4), None, None),
            ],
            r"the ranks disagree on the elements per row: per rank \[3, 4\]",
        ),
        (
            [
                (torch.zeros(2), torch.zeros(2), None, None),
                (torch.zeros(2).half(), torch.zeros(2).half(), None, None),
            ],
            r"the ranks disagree on the dtype: per rank \['float32', 'float16'\]",
        ),
        (
            [
                (torch.zeros(2), torch.zeros(2), ["a", 1], None),
                (torch.zeros(2), torch.zeros(2), None, None),
            ],
            r"rank 0: input_split_sizes must be a sequence of integers",
        ),
        (
            [
                (torch.tensor(1.0), torch.zeros(2), None, None),
                (torch.zeros(2), torch.zeros(2), None, None),
            ],
            r"rank 0: input must be a tensor of rank >= 1",
        ),
    ],
)
def test_bad_calls_raise_the_same_error(calls, pattern):
    rows = describe_all(calls)
    with pytest.raises(ValueError, match=pattern):
        check_matrix(rows, "a2a", CODEC_NAMES)


def test_codec_needs_float_rows():
    rows = describe_all([(torch.zeros(2, dtype=torch.int64), None, None, None)] * 2, Codec("fp8"))
    with pytest.raises(
        ValueError, match=r"compress='fp8' needs float32, bfloat16 or float16 rows, got int64"
    ):
        check_matrix(rows, "a2a", CODEC_NAMES)
