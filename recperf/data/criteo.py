"""Criteo display-ads files -> ``CTRData``.

Two layouts load, told apart by the first line:

* CSV with a header (the DeepCTR sample in ``../shared/data/criteo_sample``): columns
  ``label, I1..I13, C1..C26`` found by name (other columns are ignored and listed in the
  report), comma separated;
* the raw Criteo TSV (``train.txt`` of the Kaggle/Terabyte releases): no header, tab
  separated, exactly 40 fields: the label, 13 integer features, 26 hashed categoricals.

A ``.gz`` file is read through gzip. Per column (the policy, counted in ``report``):

* label: must be 0 or 1 (``"1"``, ``"1.0"``); anything else, blank included, is a
  ``ValueError`` naming the file line and the value;
* dense I1..I13: blank -> 0 (``report["missing_dense"]``); NaN or +-inf -> 0
  (``report["nan_dense"]``); a value that is not a number is a ``ValueError`` naming the
  line, column and value. Then the standard transform of counts, ``log(1 + x)``. Criteo
  has negative counts (I2 holds -1, -2, -3): with ``negative="clip"`` (the default, as in
  the DLRM reference) they become 0 before the log (``report["negative_dense"]``); with
  ``negative="signed"`` x -> sign(x) log(1 + |x|), which keeps -1 apart from 0;
  ``transform="none"`` keeps the raw values (negatives untouched);
* categorical C1..C26: hashed (``recperf.data.hashing``) into ``buckets`` ids per feature
  (an int for all, or a mapping feature name -> buckets with ``DEFAULT_BUCKETS`` for the
  others), id 0 reserved for blank (``report["missing_sparse"]``).

The helpers here (``parse_labels``, ``parse_dense``, ``resolve_buckets``, ``check_max_rows``)
are shared with the Taobao loader; reading the file (UTF-8, errors naming the line) is
``recperf.data.text_file``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from recperf.data.hashing import check_buckets, hash_column
from recperf.data.table import CTRData
from recperf.data.text_file import first_line, read_rows
from recperf.models.batch import FeatureSpec

DENSE = tuple(f"I{i}" for i in range(1, 14))
SPARSE = tuple(f"C{i}" for i in range(1, 27))
LABEL = "label"
COLUMNS = (LABEL, *DENSE, *SPARSE)

DEFAULT_BUCKETS = 1 << 15
"""Ids per categorical feature unless told (id 0: missing). The full Criteo data has
features with millions of values; pass a larger count (or a mapping) for it."""

TRANSFORMS = ("log1p", "none")
NEGATIVE = ("clip", "signed")


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def transpose(rows: list[list[str]]) -> list[tuple[str, ...]]:
    """The rows' columns (one pass over the rows)."""
    return list(zip(*rows, strict=True))


def column(columns: list[tuple[str, ...]], index: int) -> np.ndarray:
    return np.array(columns[index], dtype=str)


def parse_labels(values: np.ndarray, lines: Sequence[int], path, name: str) -> np.ndarray:
    """float32 labels in {0, 1}; anything else is a ValueError naming line and value."""
    stripped = np.char.strip(values) if len(values) else values
    try:
        x = stripped.astype(np.float64)
        bad = np.flatnonzero((x != 0) & (x != 1))
    except ValueError:  # a blank or a word somewhere: find the first one
        bad = np.array([i for i, v in enumerate(stripped.tolist()) if not _binary(v)])
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{path}, line {lines[i]} (data row {i + 1}): label {name!r} must be 0 or 1, "
            f"got {str(values[i])!r} ({len(bad)} such row(s))"
        )
    return x.astype(np.float32)


def _binary(text: str) -> bool:
    return is_number(text) and float(text) in (0.0, 1.0)


def parse_dense(
    values: np.ndarray,
    lines: Sequence[int],
    path,
    name: str,
    transform: str = "log1p",
    negative: str = "clip",
) -> tuple[np.ndarray, dict[str, int]]:
    """(float32 values, counts "missing", "nan", "negative") under the policy of the module
    docstring."""
    stripped = np.char.strip(values) if len(values) else values
    blank = stripped == ""
    x = np.zeros(len(values), dtype=np.float64)
    try:
        x[~blank] = stripped[~blank].astype(np.float64)
    except ValueError:
        for i, v in enumerate(stripped.tolist()):
            if v and not is_number(v):
                raise ValueError(
                    f"{path}, line {lines[i]} (data row {i + 1}): dense feature {name!r} must "
                    f"be a number or blank, got {str(values[i])!r}"
                ) from None
        raise
    bad = ~np.isfinite(x)
    x[bad] = 0.0
    neg = x < 0
    counts = {"missing": int(blank.sum()), "nan": int(bad.sum()), "negative": int(neg.sum())}
    if transform == "log1p" and negative == "clip":
        x = np.log1p(np.maximum(x, 0.0))
    elif transform == "log1p":
        x = np.sign(x) * np.log1p(np.abs(x))
    return x.astype(np.float32), counts


def check_policy(transform: str, negative: str) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if negative not in NEGATIVE:
        raise ValueError(f"negative must be one of {NEGATIVE}, got {negative!r}")


def check_max_rows(max_rows: int | None) -> None:
    """None (every row) or an int >= 1: a data set of no rows has nothing to train on."""
    if max_rows is None:
        return
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)):
        raise TypeError(f"max_rows must be None or an int >= 1, got {max_rows!r}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be None (every row) or an int >= 1, got {max_rows}")


def resolve_buckets(buckets: int | Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """Buckets per feature: one int for all, or a mapping (unknown names: ValueError);
    each an int >= 2 (``recperf.data.hashing.check_buckets``), never rounded."""
    if isinstance(buckets, Mapping):
        unknown = sorted(set(buckets) - set(names))
        if unknown:
            raise ValueError(
                f"buckets names unknown categorical features {unknown}; known: {list(names)}"
            )
        return {n: check_buckets(buckets.get(n, DEFAULT_BUCKETS), f"feature {n!r}") for n in names}
    count = check_buckets(buckets, "every categorical feature")
    return {n: count for n in names}


def load_criteo(
    path: str | Path,
    buckets: int | Mapping[str, int] = DEFAULT_BUCKETS,
    transform: str = "log1p",
    negative: str = "clip",
    max_rows: int | None = None,
) -> CTRData:
    """A Criteo file (either layout, module docstring) as ``CTRData``; ``max_rows``: read
    at most that many rows (None: all; 0 or less is refused: a data set needs a row)."""
    check_policy(transform, negative)
    check_max_rows(max_rows)
    first = first_line(path)
    delimiter = "\t" if "\t" in first else ","
    header = bool(first) and not is_number(first.split(delimiter)[0].strip() or "0")
    names, rows, lines = read_rows(path, delimiter, header, max_rows)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    if header:
        assert names is not None
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise ValueError(
                f"{path}: not a Criteo file: the header lacks the columns {missing} "
                f"(it has {names})"
            )
        index = {c: names.index(c) for c in COLUMNS}
        ignored = [n for n in names if n not in COLUMNS]
        layout = "criteo-csv"
    else:
        if len(rows[0]) != len(COLUMNS):
            raise ValueError(
                f"{path}: a Criteo file without a header has {len(COLUMNS)} fields per line "
                f"(label, 13 integer, 26 categorical), line {lines[0]} has {len(rows[0])}"
            )
        index = {c: i for i, c in enumerate(COLUMNS)}
        ignored = []
        layout = "criteo-tsv" if delimiter == "\t" else "criteo-csv-noheader"
    per_feature = resolve_buckets(buckets, SPARSE)
    cols = transpose(rows)

    labels = parse_labels(column(cols, index[LABEL]), lines, path, LABEL)
    N = len(labels)
    dense = np.zeros((N, len(DENSE)), dtype=np.float32)
    report = new_report("criteo", path, layout, N, transform, negative, ignored)
    for j, name in enumerate(DENSE):
        dense[:, j], counts = parse_dense(
            column(cols, index[name]), lines, path, name, transform, negative
        )
        for key, n in counts.items():
            report[f"{key}_dense"][name] = n
    sparse = np.zeros((N, len(SPARSE)), dtype=np.int64)
    for j, name in enumerate(SPARSE):
        sparse[:, j], report["missing_sparse"][name] = hash_column(
            cols[index[name]], per_feature[name], name
        )
    report["buckets"] = per_feature
    spec = FeatureSpec(DENSE, SPARSE, tuple(per_feature[n] for n in SPARSE))
    return CTRData(spec, dense, sparse, labels, report=report)


def new_report(source, path, layout, rows, transform, negative, ignored) -> dict:
    return {
        "source": source,
        "path": str(path),
        "format": layout,
        "rows": rows,
        "dense_transform": transform,
        "negative": negative,
        "ignored_columns": list(ignored),
        "missing_dense": {},
        "nan_dense": {},
        "negative_dense": {},
        "missing_sparse": {},
    }
