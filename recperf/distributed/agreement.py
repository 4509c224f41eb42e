"""Agreeing on validity across ranks before any data moves.

A distributed call validated on each rank alone hangs when one rank's arguments are bad:
that rank raises, its peers wait in the next collective until the group's timeout
(30 minutes by default). :func:`agree` closes that gap: every rank passes the error its
own validation raised (or None) and, in one small collective, learns whether any rank
failed; if one did, every rank raises the same exception type with the same text, the
lowest failing rank's message, carried as a fixed-size byte tensor (nothing is
unpickled). :func:`validated` runs a local check and agrees on its outcome in one call.

Cost when every rank is fine: one all_gather of (1 + len(values)) int64 per rank, which
also returns every rank's ``values`` (callers fold the metadata they must exchange anyway
into it). A failure costs one more broadcast of :data:`MESSAGE_BYTES` bytes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

# Status codes: 0 = fine, i + 1 = raise ERROR_TYPES[i] (subclasses included); any other
# exception travels as a RuntimeError. A type other than these three keeps its name in
# the text ("OverflowError: ...").
ERROR_TYPES = (ValueError, TypeError, RuntimeError)
MESSAGE_BYTES = 2048
INT64_MAX = 2**63 - 1

T = TypeVar("T")


def _status(error: BaseException | None) -> int:
    if error is None:
        return 0
    for i, kind in enumerate(ERROR_TYPES):
        if isinstance(error, kind):
            return i + 1
    return len(ERROR_TYPES)  # carried as a RuntimeError


def _text(error: BaseException) -> str:
    if type(error) in ERROR_TYPES:
        return str(error)
    return f"{type(error).__name__}: {error}"


def _encode(message: str, device: torch.device) -> torch.Tensor:
    data = message.encode("utf-8")
    if len(data) > MESSAGE_BYTES:
        data = data[: MESSAGE_BYTES - 3] + b"..."
    buffer = torch.zeros(MESSAGE_BYTES, dtype=torch.uint8)
    buffer[: len(data)] = torch.tensor(list(data), dtype=torch.uint8)
    return buffer.to(device)


def _decode(buffer: torch.Tensor) -> str:
    data = bytes(buffer.cpu().tolist()).rstrip(b"\0")
    return data.decode("utf-8", errors="ignore")  # a cut multi-byte character is dropped


def _int64_row(status: int, values: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor([status, *values], dtype=torch.int64, device=device)


def agree(
    error: BaseException | None,
    group: dist.ProcessGroup,
    device: torch.device,
    what: str,
    values: Sequence[int] = (),
) -> list[list[int]]:
    """Collective over ``group``: every rank passes the exception its local validation
    raised (None when its arguments are fine) and, when no rank failed, gets every rank's
    ``values`` (ints, the same count on every rank), in group rank order.

    When some rank failed, every rank raises the same exception: a ValueError or TypeError
    (subclasses included) as such, any other type as a RuntimeError, with the text
    ``"{what}: rank {r}: {message}"`` of the lowest failing rank r, followed by the list
    of failing ranks when there are several (the message starts with the original type's
    name when that was not ValueError, TypeError or RuntimeError itself). On a failing
    rank its own exception is chained as the cause (its traceback stays visible).

    ``device`` is where the group's collectives take tensors (CPU for gloo, the current
    CUDA device for NCCL: :func:`recperf.distributed.topology.metadata_device`)."""
    if error is not None:
        values = [0] * len(values)
    try:
        mine = _int64_row(_status(error), values, device)
    except (OverflowError, RuntimeError, TypeError) as e:  # a value not an int64
        error = RuntimeError(f"a value to exchange is not an int64 ({e})")
        mine = _int64_row(_status(error), [0] * len(values), device)
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(every, mine, group=group)
    rows = torch.stack(every).cpu().tolist()
    failed = [r for r, row in enumerate(rows) if row[0]]
    if not failed:
        return [row[1:] for row in rows]
    source = failed[0]
    me = dist.get_rank(group)
    buffer = _encode(_text(error) if me == source else "", device)
    dist.broadcast(buffer, group_src=source, group=group)
    message = f"{what}: rank {source}: {_decode(buffer)}"
    if len(failed) > 1:
        message += f" (ranks {failed} failed)"
    raise ERROR_TYPES[rows[source][0] - 1](message) from error


def validated(
    check: Callable[[], T],
    group: dist.ProcessGroup,
    device: torch.device,
    what: str,
) -> T:
    """Run ``check()`` (this rank's validation, returning what it computed) and agree on its
    outcome over ``group`` (:func:`agree`): its result when every rank's check passed,
    else the same exception on every rank. ``check`` must not run collectives."""
    result, error = None, None
    try:
        result = check()
    except Exception as e:  # every rank learns of it below; alone it would hang the peers
        error = e
    agree(error, group, device, what)
    return result


def check_int(value, name: str, low: int = 0, high: int = INT64_MAX) -> int:
    """value as an int in [low, high] (bool refused), or a TypeError / ValueError naming
    ``name``: what crosses the wire must fit an int64."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)  # ints, numpy and 0-dim integer tensors
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value
