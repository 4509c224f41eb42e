"""Every `recperf` command checks its command line before any work: a bad value is one line
on stderr naming the flag (or the file), nothing on stdout, and exit status 2."""

from __future__ import annotations

import argparse

import pytest

from recperf import cli_args
from recperf.cli import main
from recperf.distributed import simulate

BAD = {
    "train --lr nan": (["train", "--model", "wukong", "--lr", "nan"], "--lr"),
    "train --lr -1": (["train", "--model", "wukong", "--lr", "-1"], "--lr"),
    "train --embedding-lr": (["train", "--model", "wukong", "--embedding-lr", "-0.5"], "--embedding-lr"),
    "train --set dim=-3": (["train", "--model", "wukong", "--set", "dim=-3"], "--set dim"),
    "train --set dim=abc": (["train", "--model", "wukong", "--set", "dim=abc"], "--set dim"),
    "train --threads": (["train", "--model", "wukong", "--threads", "-2"], "--threads"),
    "train --max-len": (["train", "--model", "wukong", "--max-len", "0"], "--max-len"),
    "scaling --rows": (["scaling", "--rows", "0"], "--rows"),
    "scaling --valid-fraction": (["scaling", "--valid-fraction", "nan"], "--valid-fraction"),
    "a2a-sim --intra-gbps 0": (["a2a-sim", "--intra-gbps", "0"], "--intra-gbps"),
    "a2a-sim --nic-gbit -1": (["a2a-sim", "--nic-gbit", "-1"], "--nic-gbit"),
    "a2a-sim --tower-ratio nan": (["a2a-sim", "--tower-ratio", "nan"], "--tower-ratio"),
    "a2a-sim --nic-latency-us": (["a2a-sim", "--nic-latency-us", "-5"], "--nic-latency-us"),
    "a2a-sim --message-bytes inf": (["a2a-sim", "--message-bytes", "inf"], "--message-bytes"),
    "a2a-sim --min-gpus": (["a2a-sim", "--min-gpus", "1"], "--min-gpus"),
    "a2a-sim min > max": (["a2a-sim", "--min-gpus", "64", "--max-gpus", "8"], "--min-gpus 64"),
    "probe --lr nan": (["probe", "--lr", "nan"], "--lr"),
    "probe --budget": (["probe", "--budget", "-0.1"], "--budget"),
    "probe --min-speedup": (["probe", "--min-speedup", "inf"], "--min-speedup"),
    "probe --reservoir": (["probe", "--reservoir", "-1"], "--reservoir"),
    "probe --outliers-at": (["probe", "--model", "stack", "--depth", "2", "--outliers-at", "5"], "--outliers-at"),
    "probe --results": (["probe", "--results", "/no/such/dir"], "--results"),
    "probe --out a directory": (["probe", "--out", "/"], "--out"),
    "bench --json a directory": (["bench", "--json", "/"], "--json"),
    "bench --repeats": (["bench", "--repeats", "0"], "--repeats"),
    "bench --threshold": (["bench", "--threshold", "nan"], "--threshold"),
    "bench --dtype": (["bench", "--dtype", "float33"], "--dtype"),
}  # fmt: skip


def one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"recperf {command}: error: "), err
    return err


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_names_its_flag_and_exits_2(capsys, case):
    argv, flag = BAD[case]
    assert main(argv) == 2
    assert flag in one_line_error(capsys, argv[0])


def test_the_standalone_a2a_sim_checks_the_same(capsys):
    assert simulate.main(["--tower-ratio", "nan"]) == 2
    assert "--tower-ratio" in one_line_error(capsys, "a2a-sim")
    assert simulate.main(["--max-gpus", "8"]) == 0  # and good values still run
    assert "MODEL PREDICTIONS" in capsys.readouterr().out


GOOD_RESULT = '{"meta": {"device": "cpu"}, "rows": [{"case": "a", "variant": "b", "median_ms": 1}]}'
BROKEN_RESULTS = {
    "not JSON": (b'{"meta": {}, "rows": [', "not valid JSON"),
    "UTF-16": ('{"meta": {}, "rows": []}'.encode("utf-16"), "not UTF-8 text"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "a list": (b"[1, 2]", "is not a recperf bench result"),
    "a row without a case": (b'{"meta": {}, "rows": [{"variant": "x"}]}', r"rows\[0\] needs 'case'"),
    "a median that is text": (
        b'{"meta": {}, "rows": [{"case": "a", "variant": "b", "median_ms": "1"}]}',
        "median_ms must be a number > 0",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN_RESULTS))
def test_bench_compare_on_a_broken_file_names_it(tmp_path, capsys, case):
    content, message = BROKEN_RESULTS[case]
    good, broken = tmp_path / "good.json", tmp_path / "broken.json"
    good.write_text(GOOD_RESULT)
    broken.write_bytes(content)
    assert main(["bench", "--compare", str(good), str(broken)]) == 2
    err = one_line_error(capsys, "bench")
    assert str(broken) in err and message.replace("\\", "") in err.replace("\\", "")


def test_bench_from_and_index_name_the_broken_file(tmp_path, capsys):
    broken = tmp_path / "run.json"
    broken.write_text('{"rows": ')
    assert main(["bench", "--from", str(broken), "--plot", str(tmp_path / "p.png")]) == 2
    assert f"{broken}: not valid JSON" in one_line_error(capsys, "bench")
    assert main(["bench", "--index", str(tmp_path)]) == 2
    assert f"{broken}: not valid JSON" in one_line_error(capsys, "bench")
    assert main(["bench", "--index", str(tmp_path / "nowhere")]) == 2
    assert "--index: must be an existing directory" in one_line_error(capsys, "bench")
    assert not (tmp_path / "README.md").exists()


def test_an_unknown_flag_is_one_line_too(capsys):
    assert main(["a2a-sim", "--nic-gbitt", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("recperf: error: unrecognized arguments: --nic-gbitt")


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (cli_args.positive_float, {"1e-3": 1e-3, " 2 ": 2.0}, ["0", "-1", "nan", "inf", "1e309", "x", ""]),
        (cli_args.nonnegative_float, {"0": 0.0, "1.5": 1.5}, ["-0.1", "-inf", "nan"]),
        (cli_args.finite_float, {"-3": -3.0}, ["nan", "inf", "-inf"]),
        (cli_args.open_fraction, {"0.5": 0.5}, ["0", "1", "nan", "-0.5"]),
        (cli_args.positive_int, {"1": 1, "12": 12}, ["0", "-3", "2.5", "1e3", "abc"]),
        (cli_args.nonnegative_int, {"0": 0}, ["-1", "0.0"]),
        (cli_args.int_at_least(2), {"2": 2}, ["1", "2.5"]),
    ],
)  # fmt: skip
def test_validators(check, good, bad):
    for text, value in good.items():
        assert check(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {text!r}"):
            check(text)
