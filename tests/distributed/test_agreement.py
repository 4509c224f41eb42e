"""An error on one rank is an error on every rank, within seconds, never a hang: every
public distributed entry point called with a bad argument on one rank of a 2 x 2 gloo
group (agreement_workers.py; one spawned group runs every case)."""

from __future__ import annotations

import pytest
from agreement_workers import EXPECTED, one_rank_wrong
from mp_utils import run_on_ranks

WORLD = 4
PG_TIMEOUT_S = 10.0  # a rank left waiting would fail with a timeout, never agree
BOUND_S = 20.0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_bad_argument_on_one_rank_raises_the_same_error_on_every_rank():
    results = run_on_ranks(one_rank_wrong, WORLD, timeout=140, pg_timeout=PG_TIMEOUT_S)
    for rank, (_, failures) in enumerate(results):
        assert not failures, f"rank {rank}: {failures}"
    reports = [report for report, _ in results]
    assert set(reports[0]) == set(EXPECTED)
    wrong = []
    for name, (error, text) in EXPECTED.items():
        allowed = {e.__name__ for e in (error if isinstance(error, tuple) else (error,))}
        seen = [report[name] for report in reports]
        kinds, messages = {s[0] for s in seen}, {s[1] for s in seen}
        same = len(kinds) == 1 and kinds <= allowed and len(messages) == 1
        if not (same and text in seen[0][1] and max(s[2] for s in seen) < BOUND_S):
            wrong.append(f"{name}: expected {allowed} with {text!r}, got per rank {seen}")
    assert not wrong, "\n".join(wrong)
