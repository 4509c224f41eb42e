"""The chunk orders of the hierarchical exchange, in one process: every rank's steps are
simulated with the real permute_chunks op and plain list exchanges, for many H x L and
random splits, and each rank's result must equal all_to_all_single's layout bit for bit.
Also the validation of the gathered call descriptions (the errors every rank raises)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from recperf.distributed.exchange_plan import (
    HEADER,
    check_matrix,
    describe,
    may_overlap,
    plan_from_rows,
)
from recperf.distributed.topology import Topology
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
    rows = [[0] * len(HEADER) + splits[r] + [splits[i][r] for i in range(W)] for r in range(W)]
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
    rows = [[0] * len(HEADER) + [1, 2] + [1, 3], [0] * len(HEADER) + [3, 4] + [2, 4]]
    plan = plan_from_rows(rows, 0, 1, 2)
    assert plan.input_splits == [1, 2] and plan.output_splits == [1, 3]
    back = plan.reversed()
    assert back.input_splits == [1, 3] and back.output_splits == [1, 2]


# ------------------------------------------------------------------------------------
# Validation of the gathered matrix (what every rank raises alike)


# A gloo topology's device check, without a process group.
check_device = SimpleNamespace(backend="gloo", meta_device=torch.device("cpu"))
check_device = Topology.check_device.__get__(check_device)


def describe_all(calls, compress=None):
    W = len(calls)
    return [describe(*call, W, compress, check_device)[0] for call in calls]


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
                (torch.zeros(3), torch.zeros(3), [1, 2], [1, 2]),
                (torch.zeros(3), torch.zeros(2), [2, 1], [2, 0]),
            ],
            r"rank 1 sends 1 rows to rank 1 \(its input_split_sizes\[1\]\) but rank 1 expects 0 "
            r"rows from rank 1 \(its output_split_sizes\[1\]\)",
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
    ],
)
def test_calls_the_ranks_disagree_on_raise(calls, pattern):
    rows = describe_all(calls)
    with pytest.raises(ValueError, match=pattern):
        check_matrix(rows, "a2a", CODEC_NAMES)


x3 = torch.zeros(3)
base = torch.zeros(4, 2)


@pytest.mark.parametrize(
    "call,compress,error,pattern",
    [
        (
            (x3, x3.clone(), [1, 1], [1, 2]),
            None,
            ValueError,
            r"input_split_sizes sum to 2 but input has 3 rows",
        ),
        (
            (x3, x3.clone(), [1, 2, 0], [1, 2]),
            None,
            ValueError,
            r"input_split_sizes must have one entry per rank \(2\), got 3",
        ),
        (
            (x3, x3.clone(), [-1, 4], [1, 2]),
            None,
            ValueError,
            r"input_split_sizes\[0\] must be in \[0, 9223372036854775807\], got -1",
        ),
        (
            (x3, x3.clone(), [2**64, 1], [1, 2]),
            None,
            ValueError,
            r"input_split_sizes\[0\] must be in \[0, 9223372036854775807\], got 18446744073709551616",
        ),
        (
            (x3, None, [1, 2], [2**62, 2**62]),
            None,
            ValueError,
            r"sum\(output_split_sizes\) must be in \[0, 9223372036854775807\], got 9223372036854775808",
        ),
        (
            (x3, x3.clone(), None, None),
            None,
            ValueError,
            r"input has 3 rows, not divisible by the world size 2",
        ),
        (
            (x3, x3.clone(), ["a", 1], None),
            None,
            TypeError,
            r"input_split_sizes\[0\] must be an integer, got str",
        ),
        (
            (x3, x3.clone(), [True, 2], None),
            None,
            TypeError,
            r"input_split_sizes\[0\] must be an integer, got bool",
        ),
        (
            (x3, x3.clone(), torch.tensor([1.0, 2.0]), None),
            None,
            TypeError,
            r"input_split_sizes must be a 1-D integer tensor",
        ),
        (
            (x3, x3.clone(), 3, None),
            None,
            TypeError,
            r"input_split_sizes must be a sequence of integers, got int",
        ),
        (
            (torch.zeros(2), torch.zeros(2, dtype=torch.int32), None, None),
            None,
            TypeError,
            r"input and output must have the same dtype, got float32 and int32",
        ),
        (
            (torch.tensor(1.0), torch.zeros(2), None, None),
            None,
            ValueError,
            r"input must be a tensor of rank >= 1",
        ),
        (
            ([1.0, 2.0], torch.zeros(2), None, None),
            None,
            TypeError,
            r"input must be a torch.Tensor, got list",
        ),
        (
            (torch.zeros(2, device="meta"), None, None, None),
            None,
            ValueError,
            r"input must be on cpu or cuda \(the gloo group's devices\), got meta",
        ),
        (
            (torch.zeros(2), torch.zeros(2, device="meta"), None, None),
            None,
            ValueError,
            r"output must be on cpu or cuda .* got meta",
        ),
        (
            (torch.zeros(2), None, None, None),
            "zip",
            ValueError,
            r"compress must be None, 'bf16' or 'fp8', got 'zip'",
        ),
        (
            (torch.zeros(2, dtype=torch.int64), None, None, None),
            "fp8",
            TypeError,
            r"compress='fp8' needs float32, bfloat16 or float16 rows, got int64",
        ),
        ((x3, x3, [1, 2], [1, 2]), None, ValueError, r"output and input share memory"),
        (
            (base[:3], base[1:], [1, 2], [1, 2]),
            None,
            ValueError,
            r"share memory",
        ),
        (
            (torch.zeros(2, 2), torch.zeros(1, 2).expand(2, 2), None, None),
            None,
            ValueError,
            r"output has elements that share memory \(an expanded",
        ),
    ],
)
def test_bad_local_calls_name_the_argument(call, compress, error, pattern):
    with pytest.raises(error, match=pattern):
        describe(*call, 2, compress, check_device)


def test_an_output_that_requires_grad_is_refused_where_autograd_would_record():
    out = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"output requires grad, .* use hierarchical_all_to_all"):
        describe(torch.zeros(2), out, None, None, 2, None, check_device)
    with torch.no_grad():
        describe(torch.zeros(2), out, None, None, 2, None, check_device)


def test_overlap_is_byte_ranges():
    a = torch.zeros(4, 2)
    assert may_overlap(a, a) and may_overlap(a[1:3], a[2:]) and may_overlap(a[:, 0], a[:, 1])
    assert not may_overlap(a[:2], a[2:]) and not may_overlap(a, torch.zeros(4, 2))
    assert not may_overlap(a[:0], a)
