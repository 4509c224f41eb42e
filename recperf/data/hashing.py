"""Stable hashing of raw categorical strings into a fixed number of buckets.

``stable_hash`` is the first 8 bytes of BLAKE2b over the UTF-8 bytes of the string, read
little-endian: the same string gets the same 64-bit value in every process, on every
machine and every Python version (unlike the built-in ``hash``, salted per process by
``PYTHONHASHSEED``). There is no per-feature salt, so a string gets the same id in every
feature hashed into the same number of buckets: a click sequence of ad ids hashed into as
many buckets as the ad id feature lines up with it.

Ids (``hash_column``): with ``buckets`` = B, id 0 is reserved for "missing" (an empty or
blank string) and a present value v gets ``1 + stable_hash(v) % (B - 1)``, so ids lie in
[0, B) and B is the embedding table's cardinality. Values are stripped of surrounding
whitespace first. Each distinct string is hashed once (a dict), so a column of millions
of rows costs one BLAKE2b per distinct value.

The sequence helper (``hash_sequences``) uses the same ids with 0 meaning "no history":
a row whose sequence is empty gets the single id 0 (sequences are never empty, see
``recperf.models.batch``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

MISSING = 0
"""The id of a missing categorical value, and of "no history" in a sequence."""


def stable_hash(value: str) -> int:
    """A 64-bit hash of ``value`` that is the same in every process (module docstring)."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def check_buckets(buckets: int, what: str) -> int:
    """``buckets`` as an int, refused (ValueError naming ``what``) unless an int >= 2."""
    if isinstance(buckets, bool) or not isinstance(buckets, (int, np.integer)) or buckets < 2:
        raise ValueError(
            f"{what}: buckets must be an int >= 2 (id 0 is reserved for missing), got {buckets!r}"
        )
    return int(buckets)


def hash_column(
    values: Iterable[str], buckets: int, what: str = "column"
) -> tuple[np.ndarray, int]:
    """(ids [N] int64 in [0, buckets), number of missing values): blank strings -> 0, the
    others hashed (module docstring)."""
    b = check_buckets(buckets, what) - 1
    cache: dict[str, int] = {}

    def one(value: str) -> int:
        key = value.strip()
        found = cache.get(key)
        if found is None:
            found = cache[key] = 1 + stable_hash(key) % b if key else MISSING
        return found

    ids = np.fromiter((one(v) for v in values), dtype=np.int64)
    return ids, int((ids == MISSING).sum())


def hash_sequences(
    rows: Sequence[str],
    vocab: int,
    max_len: int,
    sep: str = "^",
    recent: str = "last",
    what: str = "sequence",
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(ids [N, T], lengths [N], counts) of ``sep``-joined id strings.

    ``recent``: which end of the string holds the most recent item, "last" (history
    appended in time order) or "first". Stored oldest to newest: the most recent item of
    row i is ``ids[i, lengths[i] - 1]`` (where InterFormer's recent-K tokens look). A
    sequence longer than ``max_len`` keeps its ``max_len`` most recent items. Blank items
    ("a^^b") are dropped; a row with no item gets the single id 0 ("no history"), length 1.
    ids are right-padded with 0 to T = the longest kept sequence (at most ``max_len``).
    counts: "empty" (rows given [0]), "truncated" (rows cut to max_len), "blank_items".
    """
    if recent not in ("last", "first"):
        raise ValueError(f"{what}: recent must be 'last' or 'first', got {recent!r}")
    if max_len < 1:
        raise ValueError(f"{what}: max_len must be >= 1, got {max_len}")
    check_buckets(vocab, what)
    lists, empty, truncated, blank = [], 0, 0, 0
    for row in rows:
        parts = row.split(sep) if row else []
        items = [p.strip() for p in parts if p.strip()]
        blank += len(parts) - len(items) if row.strip() else 0
        if recent == "first":
            items.reverse()
        if len(items) > max_len:
            items = items[-max_len:]
            truncated += 1
        if not items:
            empty += 1
        lists.append(items)
    lengths = np.array([max(1, len(x)) for x in lists], dtype=np.int64)
    T = int(lengths.max()) if len(lengths) else 1
    ids = np.zeros((len(lists), T), dtype=np.int64)
    flat = [item for x in lists for item in x]
    if flat:
        hashed, _ = hash_column(flat, vocab, what)
        rows_idx = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
        cols_idx = np.concatenate([np.arange(len(x)) for x in lists if x])
        ids[rows_idx, cols_idx] = hashed
    return ids, lengths, {"empty": empty, "truncated": truncated, "blank_items": blank}
