"""Data files as they arrive broken: another encoding, binary, a huge field, a truncated,
corrupted or fake ``.gz``: one ValueError naming the file and the line. And the loaders'
arguments refused before any file is read (no silent rounding of buckets=2.5)."""

from __future__ import annotations

import gzip
import re

import pytest

from recperf.data import load, load_criteo, load_taobao
from recperf.data.text_file import read_rows

HEADER = "clk,userid,price,click_sequence\n"


def rows(n: int) -> str:
    return "".join(f"{i % 2},u{i},{i}.5,a{i}^b{i}\n" for i in range(n))


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def gzipped(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def truncated_gz() -> bytes:
    whole = gzipped(HEADER + rows(20_000))
    return whole[: len(whole) // 2]


def corrupted_gz() -> bytes:
    raw = bytearray(gzipped(HEADER + rows(20_000)))
    for at in range(len(raw) // 2, len(raw) // 2 + 64):
        raw[at] ^= 0xFF
    return bytes(raw)


BAD = {
    "latin-1": ("t.csv", (HEADER + rows(2) + "1,caf\xe9,1.5,a\n").encode("latin-1"), 4,
                r"not UTF-8 text \(byte 6 of the line is 0xe9\)"),
    "UTF-16": ("t.csv", (HEADER + rows(2)).encode("utf-16"), 1, "not UTF-8 text"),
    "binary": ("t.csv", bytes(range(256)) * 4, 2, "not UTF-8 text"),
    "NUL bytes": ("t.csv", HEADER.encode() + b"0,u\0,1.5,a\n", 2, "a NUL byte: binary data"),
    "a field over the csv limit": (
        "t.csv", (HEADER + rows(2) + "0,u," + "9" * 200_000 + ",a\n").encode(), 4,
        "field larger than field limit",
    ),
    "latin-1 inside a .gz": (
        "t.csv.gz", gzip.compress((HEADER + "1,caf\xe9,1.5,a\n").encode("latin-1")), 2,
        "not UTF-8 text",
    ),
    "a .gz that is no gzip": ("t.csv.gz", (HEADER + rows(2)).encode(), 1, "not a valid gzip"),
    "a truncated .gz": ("t.csv.gz", truncated_gz(), None, "a truncated gzip file"),
    # garbage that inflates: the first line it breaks is named (a width, a value, the CRC)
    "a corrupted .gz": ("t.csv.gz", corrupted_gz(), None, ""),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_broken_file_is_one_value_error_naming_the_file_and_line(tmp_path, case):
    name, content, line, message = BAD[case]
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line (\d+): .*{message}") as e:
        load(path)
    found = int(re.search(r", line (\d+):", str(e.value))[1])
    if line is not None:
        assert found == line
    else:  # somewhere past the start: the rows before it were read
        assert found > 100


def test_criteo_raw_file_errors_name_the_line_too(tmp_path):
    line = "\t".join(["1", *["1"] * 13, *["abc"] * 26]) + "\n"
    path = write(
        tmp_path, "day_0.txt", (line * 3 + line.replace("abc", "\xe9t\xe9", 1)).encode("latin-1")
    )
    with pytest.raises(ValueError, match=r"day_0.txt, line 4: not UTF-8"):
        load_criteo(path)


def test_max_rows_counts_rows_and_is_checked(tmp_path):
    path = write(tmp_path, "t.csv", (HEADER + rows(5)).encode())
    assert len(load(path, max_rows=3)) == 3
    names, got, lines = read_rows(path, ",", True, max_rows=0)
    assert names == ["clk", "userid", "price", "click_sequence"] and got == [] == lines
    assert read_rows(path, ",", False, max_rows=0)[1] == []
    for bad in (0, -1):
        with pytest.raises(
            ValueError, match=rf"max_rows must be None \(every row\) or an int >= 1, got {bad}"
        ):
            load(path, max_rows=bad)
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="max_rows must be None or an int >= 1"):
            load(path, max_rows=bad)


ARGUMENTS = {
    "buckets=2.5": ({"buckets": 2.5}, ValueError, r"every categorical feature: buckets must be an int >= 2 .*got 2.5"),
    "buckets=True": ({"buckets": True}, ValueError, "buckets must be an int >= 2"),
    "a bucket of the mapping": ({"buckets": {"userid": 7.0}}, ValueError, r"feature 'userid': buckets .*got 7.0"),
    "vocab=2.5": ({"vocab": 2.5}, ValueError, r"vocab \(the sequence items\): buckets must be an int"),
    "max_len=0": ({"max_len": 0}, ValueError, "max_len must be an int >= 1, got 0"),
    "max_len=2.5": ({"max_len": 2.5}, ValueError, "max_len must be an int >= 1, got 2.5"),
    "sep=''": ({"sep": ""}, ValueError, "sep must be a non-empty str"),
    "recent": ({"recent": "middle"}, ValueError, "recent must be 'last' or 'first'"),
    "dense as a str": ({"dense": "price"}, TypeError, "dense must be a list of column names or None, got 'price'"),
    "label not a str": ({"label": 0}, TypeError, "label must be a column name"),
    "columns": ({"columns": {"label": "clk"}}, TypeError, "columns must be a Columns or None, got dict"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ARGUMENTS))
def test_a_bad_argument_is_refused_before_the_file_is_read(tmp_path, case):
    options, error, message = ARGUMENTS[case]
    missing = tmp_path / "not-read.csv"  # a FileNotFoundError would mean it was read first
    if "buckets" in options:  # buckets are checked once the columns are known
        missing = write(tmp_path, "t.csv", (HEADER + rows(3)).encode())
    with pytest.raises(error, match=message):
        load_taobao(missing, **options)


def test_criteo_buckets_are_never_rounded(tmp_path):
    line = "\t".join(["1", *["1"] * 13, *["abc"] * 26]) + "\n"
    path = write(tmp_path, "day_0.txt", line.encode())
    with pytest.raises(ValueError, match=r"got 2\.5"):
        load_criteo(path, buckets=2.5)
    assert load_criteo(path, buckets=3).spec.cardinalities == (3,) * 26


def test_batch_sizes_and_split_fractions_are_checked_when_asked(tmp_path):
    data = load("synthetic", rows=20)
    for bad, error in ((0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=f"batch_size must be an int >= 1, got {bad!r}"):
            data.batches(bad)  # at the call, not at the first next()
        with pytest.raises(error, match="batch_size must be an int >= 1"):
            data.eval_batches(bad)
    assert sum(len(b.labels) for b in data.eval_batches(7)) == 20
    for bad in (0, 1, float("nan"), "0.2", None):
        with pytest.raises(ValueError, match=r"test_fraction must be a number in \(0, 1\)"):
            data.split(bad)


def test_a_negative_seed_is_refused_by_name():
    for call in (
        lambda: load("synthetic", rows=20, seed=-1),
        lambda: load("synthetic", rows=20).split(0.5, seed=-1),
    ):
        with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
            call()


def test_a_source_that_is_no_path_is_a_type_error():
    with pytest.raises(TypeError, match="source must be 'synthetic' or a path, got NoneType"):
        load(None)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("rows", 2.5, TypeError),
        ("rows", True, TypeError),
        ("latent_dim", "4", TypeError),
        ("bayes_auc", float("nan"), TypeError),
        ("click_rate", None, TypeError),
        ("shares", (0.4, 0.35, "0.1", 0.15), TypeError),
        ("seed", -1, ValueError),
    ],
)
def test_synthetic_config_types_are_refused_not_rounded(field, value, error):
    from recperf.data import SyntheticConfig

    with pytest.raises(error, match=f"{field} must be"):
        SyntheticConfig(**{field: value})
