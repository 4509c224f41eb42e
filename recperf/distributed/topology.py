"""Hosts x local ranks, and the process groups of the hierarchical exchange.

World W = H hosts x L local ranks, ranks host-major as torchrun numbers them: rank
r = h * L + l sits on host h = r // L as local rank l = r % L. The hierarchical exchange
needs two families of groups: the L ranks of each host ("intra-host", NVLink on a GPU
machine) and the H ranks that share a local rank ("rails": each GPU's own NIC).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import timedelta

import torch
import torch.distributed as dist

from recperf.distributed.agreement import agree, check_int

COUNTER_KINDS = ("hierarchical", "flat", "tower")


@dataclass
class ExchangeCounters:
    """What one rank sent to other ranks, cumulative: bytes and messages, inside its host
    and across hosts. A message is one peer in one collective call (posted even when it
    carries no rows); a rank's copy to itself is not a message."""

    intra_host_bytes: int = 0
    intra_host_messages: int = 0
    cross_host_bytes: int = 0
    cross_host_messages: int = 0
    exchanges: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def metadata_device(group: dist.ProcessGroup) -> torch.device:
    """Where small collectives of this group must live: NCCL takes CUDA tensors only."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _requested_local_size(local_size, timeout, world_size: int) -> int:
    """The local size this rank asks for; raises (for :func:`agree` to report on every
    rank) when it has none or a bad one."""
    if timeout is not None and not isinstance(timeout, timedelta):
        raise TypeError(f"timeout must be a datetime.timedelta or None, got {timeout!r}")
    if local_size is not None:
        return check_int(local_size, "local_size", 1, world_size)
    env = os.environ.get("LOCAL_WORLD_SIZE")
    if env is None:
        raise ValueError(
            "local_size must be a positive integer; give it, or run under torchrun, which "
            "sets LOCAL_WORLD_SIZE"
        )
    try:
        value = int(env)
    except ValueError:
        raise ValueError(f"LOCAL_WORLD_SIZE must be a positive integer, got {env!r}") from None
    return check_int(value, "LOCAL_WORLD_SIZE", 1, world_size)


class Topology:
    """H hosts x L local ranks over ``group`` (default: the whole world).

    ``local_size`` (L) defaults to torchrun's ``LOCAL_WORLD_SIZE``; giving it lets one
    machine pretend to be several hosts (tests run 2x2 and 3x2 on one CPU). Construction is
    collective over ``group``: every rank must construct it, and every rank raises the same
    error when one rank's ``local_size`` or ``timeout`` is bad, the ranks disagree on L, or
    the group's size is not a multiple of it (:func:`~recperf.distributed.agreement.agree`).
    The intra-host and rail groups are created once, here, every rank calling
    ``new_group`` for every group in the same order (with ``group`` other than the world,
    only its members call, with local synchronization). ``timeout`` is the subgroups'
    (torch's default when None: pass the world's own timeout to keep them alike).

    ``counters[kind]`` accumulates what this rank sent for kind in ``COUNTER_KINDS``.
    """

    def __init__(
        self,
        local_size: int | None = None,
        group: dist.ProcessGroup | None = None,
        *,
        timeout: timedelta | None = None,
    ) -> None:
        if not dist.is_initialized():
            raise RuntimeError("Topology needs torch.distributed.init_process_group() first")
        self.group = dist.group.WORLD if group is None else group
        self.world_size = dist.get_world_size(self.group)
        self.rank = dist.get_rank(self.group)
        self.backend = dist.get_backend(self.group)
        self.meta_device = metadata_device(self.group)
        self.local_size = self._agreed_local_size(local_size, timeout)
        self.num_hosts = self.world_size // self.local_size
        self.host, self.local_rank = divmod(self.rank, self.local_size)
        self.global_ranks = dist.get_process_group_ranks(self.group)
        local_sync = self.group is not dist.group.WORLD
        H, L = self.num_hosts, self.local_size
        self.intra_group = self._new_groups(
            [[h * L + m for m in range(L)] for h in range(H)], self.host, timeout, local_sync
        )
        self.rail_group = self._new_groups(
            [[h * L + l for h in range(H)] for l in range(L)], self.local_rank, timeout, local_sync
        )
        self.counters = {kind: ExchangeCounters() for kind in COUNTER_KINDS}

    def _agreed_local_size(self, local_size, timeout) -> int:
        requested, error = 0, None
        try:
            requested = _requested_local_size(local_size, timeout, self.world_size)
        except (TypeError, ValueError) as e:
            error = e
        rows = agree(error, self.group, self.meta_device, "Topology", [requested])
        sizes = [row[0] for row in rows]
        if len(set(sizes)) != 1:
            raise ValueError(f"Topology: the ranks disagree on local_size (per rank: {sizes})")
        L = sizes[0]
        if self.world_size % L:
            raise ValueError(
                f"Topology: world size {self.world_size} is not divisible by local_size {L} "
                "(hosts x local ranks must fill the world)"
            )
        return L

    def _new_groups(self, members, mine: int, timeout, local_sync: bool):
        """One new_group per member list (group ranks), in order; returns this rank's."""
        own = None
        for index, ranks in enumerate(members):
            global_ranks = [self.global_ranks[r] for r in ranks]
            g = dist.new_group(global_ranks, timeout=timeout, use_local_synchronization=local_sync)
            if index == mine:
                own = g
        return own

    def check_device(self, t: torch.Tensor, name: str) -> None:
        """A ValueError naming ``name`` unless the group's collectives take tensors where t
        is (NCCL: the current CUDA device; gloo: CPU or CUDA; never meta)."""
        if self.backend == "nccl":
            ok, wanted = t.device == self.meta_device, str(self.meta_device)
        else:
            ok, wanted = t.device.type in ("cpu", "cuda"), "cpu or cuda"
        if not ok:
            raise ValueError(
                f"{name} must be on {wanted} (the {self.backend} group's devices), got {t.device}"
            )

    def host_of(self, rank: int) -> int:
        return rank // self.local_size

    def reset_counters(self) -> None:
        for counters in self.counters.values():
            counters.reset()

    def __repr__(self) -> str:
        return (
            f"Topology({self.num_hosts} hosts x {self.local_size} local ranks; rank {self.rank} "
            f"= host {self.host}, local rank {self.local_rank})"
        )


_default: dict[int, Topology] = {}


def default_topology() -> Topology:
    """The world's topology from torchrun's LOCAL_WORLD_SIZE, made once (collectively, on
    the first exchange that needs it: every rank reaches that point together)."""
    key = id(dist.group.WORLD)
    if key not in _default:
        _default[key] = Topology()
    return _default[key]


def resolve_topology(topology: Topology | None) -> Topology:
    """topology, or the default one for None. A wrong type is raised on this rank alone:
    without a topology there is no group to agree over."""
    if topology is None:
        return default_topology()
    if not isinstance(topology, Topology):
        raise TypeError(f"topology must be a Topology or None, got {type(topology).__name__}")
    return topology
