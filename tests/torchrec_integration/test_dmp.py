"""recperf models with tables="torchrec" sharded by torchrec's DistributedModelParallel on
4 gloo ranks (2 hosts x 2 local ranks): each rank's logits equal the unsharded model's on
its rows for every sharding type the CPU runs; row-wise is refused by name on every rank."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchrec")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "distributed"))
import dmp_workers
from mp_utils import run_on_ranks

WORLD, LOCAL = 4, 2
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "name,sharding_type",
    [
        ("wukong", "table_wise"),
        ("wukong", "column_wise"),
        ("wukong", "table_column_wise"),
        ("dhen", "table_wise"),
        ("interformer", "column_wise"),
        ("dmt", "table_column_wise"),
    ],
)
def test_sharded_logits_equal_the_unsharded_models(name, sharding_type):
    logits, _ = dmp_workers.reference(name, WORLD)
    results = run_on_ranks(
        dmp_workers.sharded_step, WORLD, name, sharding_type, LOCAL, timeout=240.0, pg_timeout=120
    )
    B = dmp_workers.ROWS_PER_RANK
    total = 0
    for rank, (rank_logits, types, nbytes) in enumerate(results):
        assert types == [sharding_type]
        want = logits[rank * B : (rank + 1) * B]
        torch.testing.assert_close(torch.from_numpy(rank_logits), want, rtol=1e-5, atol=1e-6)
        total += nbytes
    full = sum(c * dmp_workers.DIM * 4 for c in dmp_workers.SPEC.cardinalities)
    assert total == full  # every table byte is on exactly one rank


@pytest.mark.parametrize("name,sharding_type", [("wukong", "table_wise"), ("dhen", "column_wise")])
def test_twenty_sharded_training_steps_give_the_single_process_losses(name, sharding_type):
    want = dmp_workers.reference_losses(name, WORLD)
    results = run_on_ranks(
        dmp_workers.sharded_losses, WORLD, name, sharding_type, LOCAL, timeout=240.0, pg_timeout=120
    )
    got = torch.tensor(results, dtype=torch.float64).mean(0)  # equal rows: the global mean
    assert want[-1] != want[0]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-4, atol=0)


def test_row_wise_is_refused_by_name_on_every_rank():
    results = run_on_ranks(dmp_workers.refused, WORLD, "row_wise", timeout=120.0)
    assert all("sharding_type 'row_wise' does not run on cpu" in r for r in results)
