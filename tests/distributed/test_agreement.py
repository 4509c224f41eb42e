"""An error on one rank is an error on every rank, within seconds, never a hang: every
public distributed entry point called with a bad argument on one rank of a 2 x 2 gloo
group (agreement_workers.py; one spawned group runs every case)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agreement_workers import EXPECTED, MOVES_DATA, one_rank_wrong
from mp_utils import run_on_ranks

from recperf.distributed import (
    TowerTransform,
    flat_all_to_all_single,
    hierarchical_all_to_all,
    hierarchical_all_to_all_single,
    partition_towers,
)
from recperf.distributed.agreement import MESSAGE_BYTES, _decode, _encode, check_int
from recperf.distributed.tower_partitioner import FeatureCost

WORLD = 4
PG_TIMEOUT_S = 10.0  # a rank left waiting would fail with a timeout, never agree
BOUND_S = 20.0


def _check(names: list[str], then_exchange: bool) -> None:
    results = run_on_ranks(
        one_rank_wrong, WORLD, names, then_exchange, timeout=140, pg_timeout=PG_TIMEOUT_S
    )
    for rank, (_, failures) in enumerate(results):
        assert not failures, f"rank {rank}: {failures}"
    reports = [report for report, _ in results]
    wrong = []
    for name in names:
        error, text = EXPECTED[name]
        allowed = {e.__name__ for e in (error if isinstance(error, tuple) else (error,))}
        seen = [report[name] for report in reports]
        kinds, messages = {s[0] for s in seen}, {s[1] for s in seen}
        same = len(kinds) == 1 and kinds <= allowed and len(messages) == 1
        if not (same and text in seen[0][1] and max(s[2] for s in seen) < BOUND_S):
            wrong.append(f"{name}: expected {allowed} with {text!r}, got per rank {seen}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.timeout(90)
def test_a_bad_argument_on_one_rank_raises_the_same_error_on_every_rank():
    _check([name for name in EXPECTED if name not in MOVES_DATA], then_exchange=False)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_failure_after_data_moved_is_agreed_and_the_group_still_works():
    _check(sorted(MOVES_DATA), then_exchange=True)


@pytest.mark.parametrize(
    "message",
    ["", "input_split_sizes[0] must be in [0, 9223372036854775807], got -1", "é" * 5, "ü€" * 9],
)
def test_messages_travel_as_bytes(message):
    assert _decode(_encode(message, torch.device("cpu"))) == message


def test_a_long_message_is_cut_on_a_character():
    cut = _decode(_encode("€" * MESSAGE_BYTES, torch.device("cpu")))
    assert cut.endswith("...") and set(cut[:-3]) == {"€"} and len(cut.encode()) <= MESSAGE_BYTES


@pytest.mark.parametrize(
    "value,error,pattern",
    [
        (2**63, ValueError, r"n must be in \[0, 9223372036854775807\], got 9223372036854775808"),
        (-1, ValueError, r"n must be in \[0, 9223372036854775807\], got -1"),
        (True, TypeError, r"n must be an integer, got bool"),
        (1.0, TypeError, r"n must be an integer, got float"),
        ("3", TypeError, r"n must be an integer, got str"),
    ],
)
def test_check_int_names_the_argument(value, error, pattern):
    with pytest.raises(error, match=pattern):
        check_int(value, "n")


def test_check_int_takes_integer_scalars():
    assert check_int(np.int64(5), "n") == 5 and check_int(torch.tensor(7), "n") == 7
    assert check_int(2**63 - 1, "n") == 2**63 - 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: hierarchical_all_to_all(torch.zeros(2), topology="world"),
        lambda: hierarchical_all_to_all_single(torch.zeros(2), torch.zeros(2), topology=2),
        lambda: flat_all_to_all_single(torch.zeros(2), torch.zeros(2), topology=object()),
        lambda: TowerTransform(partition_towers(1, [FeatureCost(4)]), "world", 4),
    ],
)
def test_a_topology_of_the_wrong_type_is_a_type_error(call):
    with pytest.raises(TypeError, match=r"topology must be a Topology"):
        call()
