"""One entry for every data source: ``load("synthetic" | path)`` and
``load_train_valid(...)`` (the training and held-out rows).

The format of a file (``detect_format``), from its first line:

* no header (the first field is a number) and 40 fields: raw Criteo (tab separated, or
  comma separated without header);
* a header holding ``label, I1..I13, C1..C26``: Criteo CSV (``recperf.data.criteo``);
* any other header: the Taobao loader (``recperf.data.taobao``), which detects the label,
  dense, categorical and sequence columns (or takes them declared).

``format=`` ("criteo", "taobao", "synthetic") skips the detection.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from recperf.data import criteo, taobao
from recperf.data.criteo import DEFAULT_BUCKETS, is_number
from recperf.data.table import CTRData, check_seed
from recperf.data.taobao import DEFAULT_MAX_LEN
from recperf.data.text_file import first_line

FORMATS = ("synthetic", "criteo", "taobao")
SUFFIXES = (".csv", ".txt", ".tsv", ".gz")


def detect_format(path: str | Path) -> str:
    """The format of the file at ``path``, "criteo" or "taobao" (module docstring)."""
    first = first_line(path)
    if not first.strip():
        raise ValueError(f"{path}: the first line is empty; expected a header or a data row")
    delimiter = "\t" if "\t" in first else ","
    fields = [f.strip() for f in first.split(delimiter)]
    if is_number(fields[0] or "0"):
        if len(fields) == len(criteo.COLUMNS):
            return "criteo"
        raise ValueError(
            f"{path}: no header and {len(fields)} fields per line: the raw Criteo layout has "
            f"{len(criteo.COLUMNS)}; any other CSV needs a header naming its columns"
        )
    if all(c in fields for c in criteo.COLUMNS):
        return "criteo"
    return "taobao"


def load(
    source: str | Path,
    format: str | None = None,
    *,
    rows: int | None = None,
    seed: int = 0,
    buckets=DEFAULT_BUCKETS,
    max_len: int = DEFAULT_MAX_LEN,
    max_rows: int | None = None,
    transform: str = "log1p",
    negative: str = "clip",
    **options,
) -> CTRData:
    """The data set at ``source``: "synthetic" (``rows`` rows, ``seed``; ``synthetic=`` a
    whole ``SyntheticConfig``) or a file of a format told by ``detect_format``.

    buckets / transform / negative / max_rows: the file loaders' (``recperf.data.criteo``);
    max_len and ``options`` (label, dense, sparse, sequences, drop, vocab, sep, recent,
    columns): the Taobao loader's. An option the format has no use for is a ValueError."""
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be 'synthetic' or a path, got {type(source).__name__}")
    check_seed(seed)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if str(source) == "synthetic" or format == "synthetic":
        return _synthetic(rows, seed, options)
    if rows is not None:
        raise ValueError("rows= is for synthetic data; max_rows= reads part of a file")
    path = Path(source)
    format = format or detect_format(path)
    common = {"buckets": buckets, "max_rows": max_rows, "transform": transform}
    common["negative"] = negative
    if format == "criteo":
        _no_options(options, "criteo")
        return criteo.load_criteo(path, **common)
    return taobao.load_taobao(path, max_len=max_len, **common, **options)


def _no_options(options: dict, what: str) -> None:
    if options:
        raise ValueError(f"options {sorted(options)} do not apply to {what} data")


def _synthetic(rows: int | None, seed: int, options: dict) -> CTRData:
    from recperf.data.synthetic import SyntheticConfig, generate

    config = options.pop("synthetic", None) or SyntheticConfig()
    _no_options(options, "synthetic")
    if rows is not None:
        config = replace(config, rows=rows)
    return generate(replace(config, seed=seed))


def find_splits(directory: str | Path) -> tuple[Path, Path | None]:
    """(train file, valid file or None) of a directory: the one data file whose name
    starts with "train", and the one starting with "valid" or "val" when there is one."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in SUFFIXES)

    def one(prefixes: tuple[str, ...], required: bool) -> Path | None:
        found = [p for p in files if p.name.lower().startswith(prefixes)]
        if len(found) > 1 or (required and not found):
            raise ValueError(
                f"{directory}: expected one data file named {prefixes[0]}*, found "
                f"{[p.name for p in found] or 'none'} among {[p.name for p in files]}"
            )
        return found[0] if found else None

    train = one(("train",), True)
    assert train is not None
    return train, one(("valid", "val"), False)


def load_train_valid(
    source: str | Path,
    valid: str | Path | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    **options,
) -> tuple[CTRData, CTRData]:
    """(training rows, held-out rows).

    ``source``: "synthetic", a file, or a directory holding ``train*`` and optionally
    ``valid*`` files. The held-out rows come from ``valid`` (a file) or the directory's
    valid file, loaded with the training file's format and column roles (so both have the
    same spec); without one, a seeded random ``valid_fraction`` of the rows
    (``CTRData.split``). ``options`` go to ``load``. ``report["split"]`` says which."""
    if str(source) != "synthetic" and Path(source).is_dir():
        source, found = find_splits(source)
        valid = valid if valid is not None else found
    data = load(source, seed=seed, **options)
    if valid is None:
        train, held_out = data.split(valid_fraction, seed)
        how = f"random {valid_fraction:g} of {len(data)} rows (seed {seed})"
        train.report["split"] = held_out.report["split"] = how
        return train, held_out
    if str(source) == "synthetic":
        raise ValueError("a valid file goes with a data file, not with synthetic data")
    options = dict(options)
    options["format"] = "criteo" if data.report.get("source") == "criteo" else "taobao"
    if options["format"] == "taobao":
        for key in ("label", "dense", "sparse", "sequences", "drop"):
            options.pop(key, None)
        options["columns"] = taobao.Columns(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.report["columns"].items()}
        )
    held_out = load(valid, seed=seed, **options)
    if held_out.spec != data.spec:
        raise ValueError(
            f"{valid} does not have the spec of {source}: {held_out.spec} vs {data.spec}"
        )
    data.report["split"] = held_out.report["split"] = f"files {source} / {valid}"
    return data, held_out
