"""DMT's tower partitioner: features grouped into towers (one tower per host) so that
features that interact share a tower, while every tower carries a fair share of the cost.

Cost of a feature, per sample: the bytes it moves (embedding row bytes x pooling factor)
and the lookups it makes (its pooling factor). Both are normalized to sum to 1 over all
features and blended into one load, w_f = alpha * bytes_f + (1 - alpha) * lookups_f, so the
towers' loads sum to 1 and average 1/T.

Affinity between features comes from learned embeddings (:func:`feature_affinity`): the
mean |<e_i, e_j>| over samples, normalized by the norms, i.e. how strongly an FM-style
interaction between i and j can fire. Any symmetric non-negative [F, F] matrix works.

Algorithm (deterministic for a given seed):
1. T seed features, spread apart: the first drawn by the seed, each next one the feature
   least attracted to the seeds so far.
2. The other features, heaviest first, each to the tower with the highest mean affinity
   among those with room: load + w_f <= capacity.
3. Refinement passes: move a feature to another tower when that raises the total
   within-tower affinity and the capacity still holds.

Bound: every tower's load <= capacity = max((1 + slack) / T, 1 / T + max_f w_f). Step 2
never fails to find room: the least loaded tower holds at most (1 - w_f) / T when f is
placed, and (1 - w_f) / T + w_f <= 1 / T + max w. So a partition always exists within it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FeatureCost:
    """The per-sample cost of one sparse feature."""

    embedding_bytes: int  # bytes of one embedding row: dim x element size
    pooling_factor: float = 1.0  # mean ids looked up per sample

    @property
    def bytes_per_sample(self) -> float:
        return self.embedding_bytes * self.pooling_factor

    @property
    def lookups_per_sample(self) -> float:
        return self.pooling_factor


@dataclass(frozen=True)
class TowerPartition:
    """towers[t]: the features of tower t (ascending); every feature in exactly one."""

    towers: tuple[tuple[int, ...], ...]

    @property
    def num_towers(self) -> int:
        return len(self.towers)

    @property
    def num_features(self) -> int:
        return sum(len(t) for t in self.towers)

    def tower_of(self, feature: int) -> int:
        for t, members in enumerate(self.towers):
            if feature in members:
                return t
        raise ValueError(f"feature {feature} is in no tower")

    def shards(self, tower: int, local_size: int, costs: Sequence[FeatureCost] | None = None):
        """The tower's features split over the L ranks of its host (table-wise sharding):
        heaviest first onto the least loaded rank; each shard ascending."""
        members = self.towers[tower]
        weight = {f: (costs[f].bytes_per_sample if costs else 1.0) for f in members}
        loads, shards = [0.0] * local_size, [[] for _ in range(local_size)]
        for f in sorted(members, key=lambda f: (-weight[f], f)):
            m = min(range(local_size), key=lambda m: (loads[m], m))
            shards[m].append(f)
            loads[m] += weight[f]
        return [sorted(s) for s in shards]


def feature_affinity(embeddings: torch.Tensor) -> torch.Tensor:
    """Affinity [F, F] in [0, 1] from looked-up embeddings [N, F, D] of N samples:
    mean_n |<e_ni, e_nj>| / sqrt(mean_n |e_ni|^2 mean_n |e_nj|^2), diagonal 0."""
    if embeddings.dim() != 3:
        raise ValueError(f"embeddings must be [N, F, D], got shape {tuple(embeddings.shape)}")
    e = embeddings.detach().double()
    dots = torch.einsum("nid,njd->nij", e, e).abs().mean(0)
    norms = torch.diagonal(dots).clamp_min(1e-30).sqrt()
    affinity = dots / (norms[:, None] * norms[None, :])
    affinity.fill_diagonal_(0.0)
    return affinity


def _loads(costs: Sequence[FeatureCost], alpha: float) -> np.ndarray:
    byte = np.array([c.bytes_per_sample for c in costs], dtype=np.float64)
    look = np.array([c.lookups_per_sample for c in costs], dtype=np.float64)
    if (byte < 0).any() or (look < 0).any() or byte.sum() <= 0 or look.sum() <= 0:
        raise ValueError("feature costs must be >= 0 with a positive total")
    return alpha * byte / byte.sum() + (1 - alpha) * look / look.sum()


def capacity(weights: np.ndarray, num_towers: int, slack: float) -> float:
    return max((1 + slack) / num_towers, 1 / num_towers + float(weights.max()))


def partition_towers(
    num_towers: int,
    costs: Sequence[FeatureCost],
    affinity: torch.Tensor | np.ndarray | None = None,
    *,
    seed: int = 0,
    slack: float = 0.1,
    alpha: float = 0.5,
    refine_passes: int = 4,
) -> TowerPartition:
    """Group len(costs) features into num_towers towers (module docstring): affinity
    [F, F] (None: balance only), loads within capacity(...)."""
    F = len(costs)
    if not 1 <= num_towers <= F:
        raise ValueError(f"num_towers must be in 1..{F} (the feature count), got {num_towers}")
    if not 0 <= alpha <= 1 or slack < 0:
        raise ValueError(f"alpha must be in [0, 1] and slack >= 0, got {alpha}, {slack}")
    A = np.zeros((F, F)) if affinity is None else np.asarray(affinity, dtype=np.float64)
    if A.shape != (F, F):
        raise ValueError(f"affinity must be [{F}, {F}], got {A.shape}")
    A = (A + A.T) / 2
    np.fill_diagonal(A, 0.0)
    w = _loads(costs, alpha)
    cap = capacity(w, num_towers, slack)
    rng = np.random.default_rng(seed)
    tie = rng.permutation(F)  # the seed's tie-break among equals

    seeds = [int(rng.integers(F))]
    while len(seeds) < num_towers:
        pull = A[:, seeds].max(axis=1)
        pull[seeds] = np.inf
        seeds.append(min(range(F), key=lambda f: (pull[f], tie[f])))
    tower = np.full(F, -1)
    load = np.zeros(num_towers)
    for t, f in enumerate(seeds):
        tower[f], load[t] = t, w[f]
    for f in sorted((f for f in range(F) if tower[f] < 0), key=lambda f: (-w[f], tie[f])):
        room = [t for t in range(num_towers) if load[t] + w[f] <= cap + 1e-12]
        if not room:  # cannot happen (see the bound); kept as a guard
            room = [int(np.argmin(load))]
        mean_pull = [A[f, tower == t].mean() for t in room]
        best = max(range(len(room)), key=lambda i: (mean_pull[i], -load[room[i]], -room[i]))
        tower[f] = room[best]
        load[room[best]] += w[f]

    for _ in range(refine_passes):
        moved = False
        for f in sorted(range(F), key=lambda f: tie[f]):
            own = tower[f]
            if (tower == own).sum() == 1:
                continue
            stay = A[f, tower == own].sum()
            gains = [
                (A[f, tower == t].sum() - stay, -t)
                for t in range(num_towers)
                if t != own and load[t] + w[f] <= cap + 1e-12
            ]
            if gains:
                gain, neg_t = max(gains)
                if gain > 1e-12:
                    tower[f], load[own], load[-neg_t] = (
                        -neg_t,
                        load[own] - w[f],
                        load[-neg_t] + w[f],
                    )
                    moved = True
        if not moved:
            break
    towers = [tuple(int(f) for f in np.flatnonzero(tower == t)) for t in range(num_towers)]
    return TowerPartition(tuple(sorted(towers)))


@dataclass(frozen=True)
class BalanceReport:
    """Per tower: features, bytes and lookups per sample, blended load; and how much of the
    total affinity stays inside towers."""

    features: tuple[int, ...]
    bytes_per_sample: tuple[float, ...]
    lookups_per_sample: tuple[float, ...]
    load: tuple[float, ...]
    capacity: float
    within_tower_affinity: float  # fraction of the total pairwise affinity

    @staticmethod
    def _ratio(values) -> float:
        mean = sum(values) / len(values)
        return max(values) / mean if mean > 0 else 1.0

    @property
    def bytes_imbalance(self) -> float:
        """max / mean of the towers' bytes per sample (1 = perfect)."""
        return self._ratio(self.bytes_per_sample)

    @property
    def lookups_imbalance(self) -> float:
        return self._ratio(self.lookups_per_sample)

    @property
    def within_bound(self) -> bool:
        return max(self.load) <= self.capacity + 1e-9

    def __str__(self) -> str:
        lines = ["tower  features  bytes/sample  lookups/sample  load"]
        for t in range(len(self.load)):
            lines.append(
                f"{t:>5}  {self.features[t]:>8}  {self.bytes_per_sample[t]:>12.0f}  "
                f"{self.lookups_per_sample[t]:>14.1f}  {self.load[t]:.3f}"
            )
        lines.append(
            f"max/mean: bytes {self.bytes_imbalance:.3f}, lookups {self.lookups_imbalance:.3f}; "
            f"max load {max(self.load):.3f} <= capacity {self.capacity:.3f}: {self.within_bound}; "
            f"within-tower affinity {self.within_tower_affinity:.1%}"
        )
        return "\n".join(lines)


def balance_report(
    partition: TowerPartition,
    costs: Sequence[FeatureCost],
    affinity: torch.Tensor | np.ndarray | None = None,
    *,
    slack: float = 0.1,
    alpha: float = 0.5,
) -> BalanceReport:
    w = _loads(costs, alpha)
    towers = partition.towers
    within = 0.0
    if affinity is not None:
        A = np.asarray(affinity, dtype=np.float64)
        total = A.sum() - np.trace(A)
        inside = sum(A[np.ix_(t, t)].sum() - np.trace(A[np.ix_(t, t)]) for t in towers)
        within = float(inside / total) if total > 0 else 1.0
    return BalanceReport(
        features=tuple(len(t) for t in towers),
        bytes_per_sample=tuple(sum(costs[f].bytes_per_sample for f in t) for t in towers),
        lookups_per_sample=tuple(sum(costs[f].lookups_per_sample for f in t) for t in towers),
        load=tuple(float(w[list(t)].sum()) for t in towers),
        capacity=capacity(w, partition.num_towers, slack),
        within_tower_affinity=within,
    )
