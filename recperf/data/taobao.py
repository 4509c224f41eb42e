"""Taobao-format files (a CSV with a header and a click-sequence column) -> ``CTRData``.

The layout of the FuxiCTR sample in ``../shared/data/taobao_tiny``: ``clk`` (the label),
``time_stamp``, user and ad columns (``userid``, ``adgroup_id``, ``pid``, ``cate_id``, ...),
``price`` and ``click_sequence``, ad ids joined by ``^``. Any CSV with a header and a label
column loads the same way (``load`` uses this loader for every headed CSV that is not
Criteo).

Column roles (``Columns``) are declared or, for the roles left as None, detected:

* label: ``label=`` or the first of ``LABEL_NAMES`` in the header;
* dropped: ``drop=`` (default ``("time_stamp",)``: a timestamp is no categorical feature);
* sequences: ``sequences=`` or every other column whose name ends in "sequence", "_seq"
  or "history", or one of whose values contains ``sep``;
* dense: ``dense=`` or every remaining column whose non-blank values are all numbers and
  at least one of them is written as a real number ("3.9", "189.0", "1e3"): a column of
  integers ("874257") is an id, so categorical; a column with no value at all is
  categorical (every row missing);
* categorical: ``sparse=`` or every remaining column.

On the sample: label ``clk``; dense ``price``; sequence ``click_sequence``; dropped
``time_stamp``; the other 15 columns categorical. The roles are in ``report["columns"]``;
pass ``columns=`` (e.g. a training file's ``Columns``) to load another file with the same
roles whatever its values look like.

Values follow the Criteo loader's policy (``recperf.data.criteo``): labels 0/1 or a
ValueError naming the line; dense blank / NaN -> 0 with counts, log(1 + x) with negatives
clipped to 0 (or ``negative="signed"``); categoricals hashed into ``buckets`` ids, 0 for
blank. Sequences (``recperf.data.hashing.hash_sequences``): item ids hashed into ``vocab``
ids (default: as many as ``buckets``, so they line up with ``adgroup_id``'s ids), 0
reserved for "no history"; the LAST item of the string is the most recent (``recent=
"last"``; "first" for files written newest first); longer than ``max_len``: the
``max_len`` most recent kept (``report["truncated_sequences"]``); empty: the single id 0
(``report["empty_sequences"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recperf.data.criteo import (
    DEFAULT_BUCKETS,
    check_max_rows,
    check_policy,
    column,
    is_number,
    new_report,
    parse_dense,
    parse_labels,
    resolve_buckets,
    transpose,
)
from recperf.data.hashing import check_buckets, hash_column, hash_sequences
from recperf.data.table import CTRData
from recperf.data.text_file import first_line, read_rows
from recperf.models.batch import FeatureSpec, SequenceSpec

LABEL_NAMES = ("clk", "label", "click", "is_click")
DROP = ("time_stamp",)
SEQUENCE_SUFFIXES = ("sequence", "_seq", "history")
DEFAULT_MAX_LEN = 20


@dataclass(frozen=True)
class Columns:
    """The role of each column of a headed CSV (module docstring)."""

    label: str
    dense: tuple[str, ...]
    sparse: tuple[str, ...]
    sequences: tuple[str, ...]
    ignored: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _real(text: str) -> bool:
    return any(ch in text for ch in ".eEnN")  # 3.9, 1e3, nan, inf


def detect_columns(
    names: Sequence[str],
    rows: list[list[str]],
    label: str | None = None,
    dense: Sequence[str] | None = None,
    sparse: Sequence[str] | None = None,
    sequences: Sequence[str] | None = None,
    drop: Sequence[str] = DROP,
    sep: str = "^",
    path: object = "the file",
) -> Columns:
    """The roles of ``names`` given the rows, declared ones kept (module docstring)."""
    names = list(names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate column names {dup}")
    for what, given in (("dense", dense), ("sparse", sparse), ("sequences", sequences)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(f"{path}: {what} names unknown columns {unknown}; columns: {names}")
    if label is None:
        label = next((n for n in LABEL_NAMES if n in names), None)
        if label is None:
            raise ValueError(
                f"{path}: no label column (looked for {list(LABEL_NAMES)}; columns: {names}); "
                "pass label="
            )
    elif label not in names:
        raise ValueError(f"{path}: label column {label!r} not in the header {names}")
    declared = [*(dense or ()), *(sparse or ()), *(sequences or ())]
    clash = sorted({n for n in declared if declared.count(n) > 1 or n == label})
    if clash:
        raise ValueError(f"{path}: columns {clash} are given more than one role")
    dropped = [n for n in names if n in drop and n not in declared]
    free = [n for n in names if n != label and n not in dropped and n not in declared]

    def values(name: str) -> list[str]:
        i = names.index(name)
        return [v for r in rows if (v := r[i].strip())]

    if sequences is None:
        sequences = [
            n
            for n in free
            if n.lower().endswith(SEQUENCE_SUFFIXES) or any(sep in v for v in values(n))
        ]
        free = [n for n in free if n not in sequences]
    if dense is None:
        dense = []
        if sparse is None:
            for n in free:
                vals = values(n)
                if vals and all(map(is_number, vals)) and any(map(_real, vals)):
                    dense.append(n)
        free = [n for n in free if n not in dense]
    if sparse is None:
        sparse, free = free, []
    return Columns(label, tuple(dense), tuple(sparse), tuple(sequences), (*dropped, *free))


def _check_options(
    columns, label, dense, sparse, sequences, drop, vocab, max_len, sep, recent
) -> None:
    """The loader's own arguments, before the file is read."""
    if columns is not None and not isinstance(columns, Columns):
        raise TypeError(f"columns must be a Columns or None, got {type(columns).__name__}")
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a column name (str) or None, got {label!r}")
    for name, names in (("dense", dense), ("sparse", sparse), ("sequences", sequences)):
        _check_names(name, names, optional=True)
    _check_names("drop", drop, optional=False)
    if vocab is not None:
        check_buckets(vocab, "vocab (the sequence items)")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty str, got {sep!r}")
    if recent not in ("last", "first"):
        raise ValueError(f"recent must be 'last' or 'first', got {recent!r}")


def _check_names(name: str, names, optional: bool) -> None:
    if names is None and optional:
        return
    if (
        isinstance(names, str)
        or not isinstance(names, Sequence)
        or not all(isinstance(n, str) for n in names)
    ):
        raise TypeError(
            f"{name} must be a list of column names{' or None' if optional else ''}, got {names!r}"
        )


def load_taobao(
    path: str | Path,
    columns: Columns | None = None,
    *,
    label: str | None = None,
    dense: Sequence[str] | None = None,
    sparse: Sequence[str] | None = None,
    sequences: Sequence[str] | None = None,
    drop: Sequence[str] = DROP,
    buckets: int | Mapping[str, int] = DEFAULT_BUCKETS,
    vocab: int | None = None,
    max_len: int = DEFAULT_MAX_LEN,
    sep: str = "^",
    recent: str = "last",
    transform: str = "log1p",
    negative: str = "clip",
    max_rows: int | None = None,
) -> CTRData:
    """A headed CSV with (optionally) sequence columns as ``CTRData`` (module docstring)."""
    check_policy(transform, negative)
    check_max_rows(max_rows)
    _check_options(columns, label, dense, sparse, sequences, drop, vocab, max_len, sep, recent)
    delimiter = "\t" if "\t" in first_line(path) else ","
    names, rows, lines = read_rows(path, delimiter, True, max_rows)
    if names is None or not rows:
        raise ValueError(f"{path}: no data rows")
    if columns is None:
        columns = detect_columns(names, rows, label, dense, sparse, sequences, drop, sep, path)
    else:
        missing = [
            n for n in (columns.label, *columns.dense, *columns.sparse, *columns.sequences)
            if n not in names
        ]  # fmt: skip
        if missing:
            raise ValueError(f"{path}: lacks the columns {missing} (header: {names})")
    index = {n: names.index(n) for n in names}
    per_feature = resolve_buckets(buckets, columns.sparse)
    if vocab is None:
        vocab = DEFAULT_BUCKETS if isinstance(buckets, Mapping) else int(buckets)  # checked above

    cols = transpose(rows)
    labels = parse_labels(column(cols, index[columns.label]), lines, path, columns.label)
    N = len(labels)
    report = new_report("taobao", path, "csv", N, transform, negative, columns.ignored)
    report.update(
        columns=columns.as_dict(),
        buckets=per_feature,
        sequence_vocab=int(vocab),
        sequence_max_len=int(max_len),
        sequence_recent_end=recent,
        empty_sequences={},
        truncated_sequences={},
        blank_sequence_items={},
    )
    dense_cols = np.zeros((N, len(columns.dense)), dtype=np.float32)
    for j, name in enumerate(columns.dense):
        dense_cols[:, j], counts = parse_dense(
            column(cols, index[name]), lines, path, name, transform, negative
        )
        for key, n in counts.items():
            report[f"{key}_dense"][name] = n
    sparse_cols = np.zeros((N, len(columns.sparse)), dtype=np.int64)
    for j, name in enumerate(columns.sparse):
        sparse_cols[:, j], report["missing_sparse"][name] = hash_column(
            cols[index[name]], per_feature[name], name
        )
    seq_ids, seq_lengths, seq_specs = [], [], []
    for name in columns.sequences:
        ids, lengths, counts = hash_sequences(cols[index[name]], vocab, max_len, sep, recent, name)
        seq_ids.append(ids)
        seq_lengths.append(lengths)
        seq_specs.append(SequenceSpec(name, int(vocab), int(max_len)))
        report["empty_sequences"][name] = counts["empty"]
        report["truncated_sequences"][name] = counts["truncated"]
        report["blank_sequence_items"][name] = counts["blank_items"]
    spec = FeatureSpec(
        columns.dense,
        columns.sparse,
        tuple(per_feature[n] for n in columns.sparse),
        tuple(seq_specs),
    )
    return CTRData(
        spec, dense_cols, sparse_cols, labels, tuple(seq_ids), tuple(seq_lengths), report=report
    )
