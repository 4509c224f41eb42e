"""DMT under torch.distributed (gloo, 2 hosts x 2 local ranks on this machine): each rank's
logits and, after sync_gradients, the gradient of every parameter it owns equal the
single-process DMT's on the same global batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from numerics import assert_close

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "distributed"))
import dmt_workers
from mp_utils import run_on_ranks

WORLD, LOCAL = 4, 2


@pytest.mark.parametrize("backbone", ["wukong", "dhen", "interformer"])
def test_distributed_dmt_matches_one_process(backbone):
    logits, grads = dmt_workers.reference(backbone, WORLD)
    results = run_on_ranks(dmt_workers.distributed_step, WORLD, backbone, LOCAL, timeout=120.0)
    B = dmt_workers.ROWS_PER_RANK
    covered = set()
    for rank, (rank_logits, rank_grads) in enumerate(results):
        rank_logits = torch.from_numpy(rank_logits)
        assert_close(rank_logits, logits[rank * B : (rank + 1) * B], torch.float32, f"rank {rank}")
        for name, g in rank_grads.items():
            assert_close(
                torch.from_numpy(g), grads[name], torch.float32, f"rank {rank} grad {name}", 1e-5
            )
        covered |= set(rank_grads)
    assert covered == set(grads), f"no rank owns {sorted(set(grads) - covered)}"


def test_towers_must_match_hosts():
    results = run_on_ranks(_three_towers, 2, timeout=60.0)
    assert all("one tower per host" in r for r in results)


def _three_towers(rank, world_size):
    from recperf.distributed import Topology
    from recperf.models import build_model
    from recperf.models.dmt_distributed import DistributedDMT

    model = build_model("dmt", dmt_workers.SPEC, dim=8, towers=3)
    try:
        DistributedDMT(model, Topology(local_size=1))
    except ValueError as e:
        return str(e)
    return "no error"


@pytest.mark.parametrize("backbone", ["wukong", "dhen", "interformer"])
def test_dmt_returns_an_empty_result_for_an_empty_batch(backbone):
    from recperf.models import build_model
    from recperf.models.counting import example_batch

    model = build_model("dmt", dmt_workers.SPEC, dim=8, backbone=backbone, towers=2)
    logits = model(example_batch(dmt_workers.SPEC, 0, seed=1))
    assert logits.shape == (0,) and logits.dtype == torch.float32
