"""The hierarchical all-to-all on real gloo process groups spawned on this machine: 2x2
and 3x2 topologies, random uneven splits with zeros, several dtypes (FP8 included) and
trailing shapes, forward and backward, each bit for bit against the flat exchange;
message counts; bad calls raising the same error on every rank; a failing peer; DMT's
tower transform. Few groups, many checks each (see workers.py), every run under a
deadline."""

from __future__ import annotations

import pytest
import torch
from mp_utils import run_on_ranks
from workers import DTYPES, TRAILING, edge_topologies, failing_peer, run_suite

ALL_CASES = [(dtype, trailing) for dtype in DTYPES for trailing in TRAILING]


@pytest.mark.timeout(90)
def test_2x2():
    results = run_on_ranks(run_suite, 4, 2, ALL_CASES, timeout=80)
    for rank, failures in enumerate(results):
        assert not failures, f"rank {rank}: {failures}"


@pytest.mark.timeout(90)
def test_3x2():
    cases = [(torch.float32, (3,)), (torch.float8_e4m3fn, (2, 5)), (torch.int64, ())]
    results = run_on_ranks(run_suite, 6, 2, cases, False, timeout=80)
    for rank, failures in enumerate(results):
        assert not failures, f"rank {rank}: {failures}"


@pytest.mark.timeout(60)
def test_impossible_topologies_raise_on_every_rank_and_degenerate_ones_work():
    results = run_on_ranks(edge_topologies, 6, timeout=50)
    for rank, (_, failures) in enumerate(results):
        assert not failures, f"rank {rank}: {failures}"
    not_divisible, disagreeing, unset = zip(*(messages for messages, _ in results), strict=True)
    assert set(not_divisible) == {
        "Topology: world size 6 is not divisible by local_size 4 (hosts x local ranks must "
        "fill the world)"
    }
    assert len(set(disagreeing)) == 1 and "disagree on local_size" in disagreeing[0]
    assert len(set(unset)) == 1 and "LOCAL_WORLD_SIZE" in unset[0]


@pytest.mark.timeout(60)
def test_failing_peer_makes_the_others_fail_not_hang():
    timeout_s, stall_s = 2.0, 3.0
    results = run_on_ranks(
        failing_peer,
        2,
        stall_s,
        timeout_s,
        timeout=50,
        pg_timeout=timeout_s,
        may_exit=frozenset({1}),
        barrier_at_end=False,
    )
    (stall_error, stall_s_taken), (die_error, die_s_taken) = results[0]["stall"], results[0]["die"]
    assert "timed out" in stall_error.lower() or "timeout" in stall_error.lower(), stall_error
    assert timeout_s * 0.8 < stall_s_taken < timeout_s + 10, stall_s_taken
    assert die_error != "no error" and die_s_taken < timeout_s + 10, (die_error, die_s_taken)
