"""Distributed exchange for recommendation models on ``torch.distributed``.

* :class:`Topology`: hosts x local ranks, with the intra-host and rail process groups.
* :func:`hierarchical_all_to_all_single` / :func:`hierarchical_all_to_all`: the result of
  ``all_to_all_single``, bit for bit, with H - 1 cross-host messages per rank instead of
  L (H - 1); async handle, autograd, optional bf16 / FP8 payload
  (:func:`compression_error` measures what that costs).
* :mod:`recperf.distributed.towers`: DMT's tower transform and tower partitioner.
* :func:`agree` / :func:`validated`: an error on one rank becomes the same error on every
  rank, in one small collective, before any data moves (every entry point above uses it).
* :mod:`recperf.distributed.simulate`: an alpha-beta model of flat vs hierarchical vs
  tower exchange at scale (``recperf a2a-sim``).

Importing this package registers ``torch.ops.recperf.permute_chunks`` (recperf.ops.a2a).
"""

from recperf.distributed.agreement import agree, validated
from recperf.distributed.all_to_all import (
    ExchangeHandle,
    flat_all_to_all_single,
    hierarchical_all_to_all,
    hierarchical_all_to_all_single,
)
from recperf.distributed.compress import CompressionError, compression_error
from recperf.distributed.exchange_plan import ExchangePlan
from recperf.distributed.topology import ExchangeCounters, Topology
from recperf.distributed.towers import (
    BalanceReport,
    FeatureCost,
    FlattenTower,
    LinearTower,
    TowerPartition,
    TowerTransform,
    balance_report,
    feature_affinity,
    partition_towers,
)
from recperf.ops.a2a import permute_chunks

__all__ = [
    "BalanceReport",
    "CompressionError",
    "ExchangeCounters",
    "ExchangeHandle",
    "ExchangePlan",
    "FeatureCost",
    "FlattenTower",
    "LinearTower",
    "Topology",
    "TowerPartition",
    "TowerTransform",
    "agree",
    "balance_report",
    "compression_error",
    "feature_affinity",
    "flat_all_to_all_single",
    "hierarchical_all_to_all",
    "hierarchical_all_to_all_single",
    "partition_towers",
    "permute_chunks",
    "validated",
]
