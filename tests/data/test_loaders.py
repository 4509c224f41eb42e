"""The data loaders: the real Criteo and Taobao samples, crafted tiny files for every
missing-value and bad-input policy, stable hashing, format detection and splits."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recperf.data import (
    Columns,
    detect_format,
    hash_column,
    hash_sequences,
    load,
    load_criteo,
    load_taobao,
    load_train_valid,
    stable_hash,
)
from recperf.data.criteo import COLUMNS, DENSE, SPARSE

DATA = Path(__file__).resolve().parent / "samples"
CRITEO = DATA / "criteo_sample" / "criteo_sample.txt"
TAOBAO = DATA / "taobao_tiny"


def raw_columns(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


# -- hashing ----------------------------------------------------------------------------


def test_stable_hash_is_pinned():
    # BLAKE2b-64 of the UTF-8 bytes, little-endian: a change here re-maps every trained table.
    assert stable_hash("05db9164") == 4582638078171527438
    ids, missing = hash_column(["05db9164", "", "  ", " 05db9164 "], 1000)
    assert ids.tolist() == [441, 0, 0, 441] and missing == 2


def test_hashing_is_the_same_in_another_process():
    values = ["05db9164", "68fd1e64", "430548_1007", "ünïcode", "170301"]
    here = hash_column(values, 97)[0].tolist()
    code = (
        "from recperf.data.hashing import hash_column;"
        f"print(hash_column({values!r}, 97)[0].tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.strip() == str(here)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=30), st.integers(2, 50))
def test_hash_column_ids_in_range_and_zero_only_for_blank(values, buckets):
    ids, missing = hash_column(values, buckets)
    assert ids.shape == (len(values),) and ids.dtype == np.int64
    assert ((ids >= 0) & (ids < buckets)).all()
    blank = np.array([not v.strip() for v in values], dtype=bool)
    assert (ids == 0).tolist() == blank.tolist() and missing == blank.sum()
    for i, v in enumerate(values):  # equal strings, equal ids
        for j, w in enumerate(values):
            if v.strip() == w.strip():
                assert ids[i] == ids[j]


@pytest.mark.parametrize("buckets", [1, 0, 2.5, True])
def test_bad_bucket_counts_are_refused(buckets):
    with pytest.raises(ValueError, match="buckets must be an int >= 2"):
        hash_column(["a"], buckets)


def test_hash_sequences_policy():
    ids, lengths, counts = hash_sequences(["a^b^c^d", "", "x", "a^^b", " "], 50, max_len=3)
    a, b, c, d, x = hash_column(["a", "b", "c", "d", "x"], 50)[0].tolist()
    assert ids.shape == (5, 3)
    # oldest -> newest, the 3 most recent kept; right-padded with 0
    assert ids.tolist() == [[b, c, d], [0, 0, 0], [x, 0, 0], [a, b, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 1, 2, 1]
    assert counts == {"empty": 2, "truncated": 1, "blank_items": 1}
    newest_first, _, _ = hash_sequences(["a^b^c^d"], 50, max_len=3, recent="first")
    assert newest_first.tolist() == [[c, b, a]]
    with pytest.raises(ValueError, match="recent must be"):
        hash_sequences(["a"], 50, 3, recent="middle")


# -- the real samples --------------------------------------------------------------------


def test_criteo_sample():
    data = load_criteo(CRITEO, buckets=1000)
    raw = raw_columns(CRITEO)
    assert len(data) == 200 and data.report["format"] == "criteo-csv"
    assert data.spec.dense == DENSE and data.spec.sparse == SPARSE
    assert data.spec.cardinalities == (1000,) * 26 and data.spec.sequences == ()
    assert data.dense.shape == (200, 13) and data.dense.dtype == np.float32
    assert np.isfinite(data.dense).all()
    assert data.sparse.shape == (200, 26) and data.sparse.dtype == np.int64
    assert ((data.sparse >= 0) & (data.sparse < 1000)).all()
    assert set(np.unique(data.labels)) == {0.0, 1.0}
    assert data.labels.sum() == sum(float(v) for v in raw["label"])
    r = data.report
    for name in DENSE:
        assert r["missing_dense"][name] == raw[name].count("")
        assert r["negative_dense"][name] == sum(v.startswith("-") for v in raw[name])
    assert r["missing_dense"]["I12"] == 157 and r["negative_dense"]["I2"] == 15
    for j, name in enumerate(SPARSE):
        blank = np.array([v == "" for v in raw[name]])
        assert r["missing_sparse"][name] == blank.sum()
        assert ((data.sparse[:, j] == 0) == blank).all()  # 0 exactly where missing
    assert r["missing_sparse"]["C22"] == 159
    # log(1 + x); I2 = -1 on the second row clipped to 0; I1 blank -> 0
    assert data.dense[0, 2] == pytest.approx(math.log1p(260.0))
    assert raw["I2"][1] == "-1" and data.dense[1, 1] == 0.0 and data.dense[0, 0] == 0.0


def test_criteo_signed_and_raw_transforms():
    signed = load_criteo(CRITEO, buckets=100, negative="signed")
    assert signed.dense[1, 1] == pytest.approx(-math.log(2.0))
    raw = load_criteo(CRITEO, buckets=100, transform="none")
    assert raw.dense[0, 2] == 260.0 and raw.dense[1, 1] == -1.0


def test_taobao_sample_columns_and_sequences():
    data = load_taobao(TAOBAO / "train_sample.csv", buckets=500, max_len=4)
    raw = raw_columns(TAOBAO / "train_sample.csv")
    cols = data.report["columns"]
    assert cols["label"] == "clk" and cols["dense"] == ["price"]
    assert cols["sequences"] == ["click_sequence"] and cols["ignored"] == ["time_stamp"]
    assert len(cols["sparse"]) == 15 and "userid" in cols["sparse"] and "pid" in cols["sparse"]
    assert len(data) == 100 and data.spec.dense == ("price",)
    (seq,) = data.spec.sequences
    assert (seq.name, seq.vocab, seq.max_len) == ("click_sequence", 500, 4)
    ids, lengths = data.seq_ids[0], data.seq_lengths[0]
    assert ((ids >= 0) & (ids < 500)).all() and (lengths >= 1).all() and ids.shape[1] <= 4
    empty = np.array([v == "" for v in raw["click_sequence"]])
    assert data.report["empty_sequences"]["click_sequence"] == empty.sum() == 75
    assert (ids[empty] == 0).all() and (lengths[empty] == 1).all()
    # row 3: six ads, the last the most recent; max_len 4 keeps the last four
    items = raw["click_sequence"][2].split("^")
    assert len(items) == 6 and lengths[2] == 4
    assert ids[2].tolist() == hash_column(items[-4:], 500)[0].tolist()
    assert data.report["truncated_sequences"]["click_sequence"] == 1
    # the sequence's ids line up with the ad id feature's (same buckets, same hash)
    ad = data.spec.sparse.index("adgroup_id")
    assert data.sparse[0, ad] == hash_column([raw["adgroup_id"][0]], 500)[0][0]
    assert data.report["missing_sparse"]["new_user_class_level"] == 100
    assert data.report["missing_sparse"]["brand"] == raw["brand"].count("") == 27
    assert data.dense[0, 0] == pytest.approx(math.log1p(3.9))


def test_load_picks_the_format_and_the_directory_gives_the_valid_file():
    assert detect_format(CRITEO) == "criteo"
    assert detect_format(TAOBAO / "train_sample.csv") == "taobao"
    train, valid = load_train_valid(TAOBAO, buckets=100)
    assert (len(train), len(valid)) == (100, 100) and train.spec == valid.spec
    assert valid.report["path"].endswith("valid_sample.csv")
    assert valid.report["empty_sequences"]["click_sequence"] == 84
    assert "valid_sample.csv" in train.report["split"]


def test_a_file_without_a_valid_file_is_split():
    train, valid = load_train_valid(CRITEO, valid_fraction=0.2, seed=3, buckets=100)
    assert (len(train), len(valid)) == (160, 40) and "random 0.2" in valid.report["split"]
    again, _ = load_train_valid(CRITEO, valid_fraction=0.2, seed=3, buckets=100)
    assert np.array_equal(train.sparse, again.sparse)  # seeded


def test_synthetic_through_load():
    data = load("synthetic", rows=300, seed=1)
    assert len(data) == 300 and data.prob is not None and data.report["source"] == "synthetic"
    with pytest.raises(ValueError, match="rows= is for synthetic"):
        load(CRITEO, rows=10)
    with pytest.raises(ValueError, match="do not apply"):
        load("synthetic", rows=10, sep=",")


# -- crafted files -------------------------------------------------------------------------


def criteo_line(label="0", dense=None, sparse=None, sep="\t") -> str:
    dense = dense or ["1"] * 13
    sparse = sparse or ["abc"] * 26
    return sep.join([label, *dense, *sparse]) + "\n"


def test_raw_criteo_tsv(tmp_path):
    path = tmp_path / "day_0.txt"
    dense = ["", "-2", "nan", "3", "inf", *["0"] * 8]
    sparse = ["", "68fd1e64", *["x"] * 24]
    path.write_text(criteo_line("1", dense, sparse) + criteo_line("0"))
    assert detect_format(path) == "criteo"
    data = load(path, buckets=64)
    assert data.report["format"] == "criteo-tsv" and len(data) == 2
    assert data.labels.tolist() == [1.0, 0.0]
    r = data.report
    assert r["missing_dense"]["I1"] == 1 and r["negative_dense"]["I2"] == 1
    assert r["nan_dense"]["I3"] == 1 and r["nan_dense"]["I5"] == 1  # NaN and inf -> 0
    assert data.dense[0, :5].tolist() == pytest.approx([0, 0, 0, math.log1p(3), 0])
    assert data.sparse[0, 0] == 0 and r["missing_sparse"]["C1"] == 1
    assert data.sparse[0, 1] == hash_column(["68fd1e64"], 64)[0][0]


def test_criteo_csv_with_header_and_extra_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(",".join([*COLUMNS, "extra"]) + "\n" + criteo_line(sep=",")[:-1] + ",9\n")
    data = load(path, buckets=8)
    assert len(data) == 1 and data.report["ignored_columns"] == ["extra"]


@pytest.mark.parametrize("label", ["2", "", "yes", "0.5", "-1"])
def test_a_label_other_than_0_1_names_the_line_and_value(tmp_path, label):
    path = tmp_path / "bad.txt"
    path.write_text(criteo_line("0") + criteo_line("1") + criteo_line(label))
    with pytest.raises(ValueError, match=rf"line 3 \(data row 3\).*got {label!r}"):
        load_criteo(path, buckets=8)


def test_taobao_bad_label_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("clk,userid,click_sequence\n0,u1,a^b\n1,u2,\n3,u3,a\n")
    with pytest.raises(ValueError, match=r"line 4 .*'clk'.*got '3'"):
        load_taobao(path)


def test_a_dense_value_that_is_not_a_number_is_an_error(tmp_path):
    path = tmp_path / "bad.txt"
    dense = ["1", "x7", *["0"] * 11]
    path.write_text(criteo_line() + criteo_line("1", dense))
    with pytest.raises(ValueError, match=r"line 2 .*'I2'.*'x7'"):
        load_criteo(path, buckets=8)


def test_a_row_of_the_wrong_width_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(criteo_line() + "1\t2\t3\n")
    with pytest.raises(ValueError, match="line 2: 3 fields, expected 40"):
        load_criteo(path, buckets=8)


def test_headerless_files_of_another_width_are_refused(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="no header and 3 fields"):
        load(path)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-such\.csv"):
        load(tmp_path / "no-such.csv")
    (tmp_path / "empty.csv").write_text("clk,a\n")
    with pytest.raises(ValueError, match="no data rows"):
        load(tmp_path / "empty.csv")


def test_taobao_crafted_missing_values_and_declared_roles(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "clk,time_stamp,user,score,hist\n0,2017,u1,1.5,a^b\n1,2017,,nan,\n0,2017,u3,,c^^d\n"
    )
    data = load(path, buckets=16, max_len=5)
    assert data.spec.dense == ("score",) and data.spec.sparse == ("user",)
    assert data.spec.sequences[0].name == "hist"  # detected by its "^"-joined values
    r = data.report
    assert r["nan_dense"]["score"] == 1 and r["missing_dense"]["score"] == 1
    assert r["missing_sparse"]["user"] == 1 and r["empty_sequences"]["hist"] == 1
    assert r["blank_sequence_items"]["hist"] == 1
    assert data.seq_lengths[0].tolist() == [2, 1, 2] and data.seq_ids[0][1].tolist() == [0, 0]
    assert data.dense[:, 0].tolist() == pytest.approx([math.log1p(1.5), 0, 0])
    # declared: score as an id, hist as a plain categorical
    declared = load_taobao(path, sparse=["user", "score", "hist"], sequences=[], buckets=16)
    assert declared.spec.sparse == ("user", "score", "hist") and declared.spec.dense == ()
    with pytest.raises(ValueError, match=r"unknown columns \['nope'\]"):
        load_taobao(path, dense=["nope"])
    with pytest.raises(ValueError, match="more than one role"):
        load_taobao(path, dense=["score"], sparse=["score"])
    with pytest.raises(ValueError, match=r"unknown categorical features \['C99'\]"):
        load_taobao(path, buckets={"C99": 10})
    roles = Columns("clk", ("score",), ("user",), ("hist",), ("time_stamp",))
    assert load_taobao(path, roles, buckets=16, max_len=5).spec == data.spec


def test_no_label_column_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no label column"):
        load(path)


def test_per_feature_buckets(tmp_path):
    path = tmp_path / "day.txt"
    path.write_text(criteo_line() * 3)
    data = load_criteo(path, buckets={"C1": 5, "C26": 7})
    assert data.spec.cardinalities[0] == 5 and data.spec.cardinalities[-1] == 7
    assert data.spec.cardinalities[1] == 1 << 15
