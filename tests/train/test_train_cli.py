"""Training end to end on each real sample with each model, and `recperf train` through
``recperf.cli.main``: the metrics table, --json, checkpoints and resume, and one clean
line with exit code 2 for every kind of bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from recperf.cli import main
from recperf.data import load_train_valid
from recperf.models.registry import MODELS, build_model
from recperf.train import checkpoint
from recperf.train.loop import TrainConfig, predict, train

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parents[1] / "data" / "samples"
CRITEO = DATA / "criteo_sample" / "criteo_sample.txt"
TAOBAO = DATA / "taobao_tiny"
QUIET = [
    "--no-progress",
    "--threads",
    "1",
    "--batch-size",
    "32",
    "--buckets",
    "64",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def samples():
    return {
        "criteo": load_train_valid(CRITEO, buckets=64, seed=0),
        "taobao": load_train_valid(TAOBAO, buckets=64),
    }


@pytest.mark.parametrize("sample", ["criteo", "taobao"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_trains_on_each_real_sample(samples, sample, name):
    train_data, valid = samples[sample]
    torch.manual_seed(0)
    if name == "interformer" and not train_data.spec.sequences:
        with pytest.raises(ValueError, match="needs at least one sequence feature"):
            build_model(name, train_data.spec, dim=8)
        return
    model = build_model(name, train_data.spec, dim=8)
    result = train(model, train_data, 3, valid, TrainConfig(batch_size=32, progress=False))
    assert result.steps == 3 and len(result.losses) == 3
    assert all(math.isfinite(v) for v in result.losses)
    m = result.metrics
    assert 0.0 <= m["auc"] <= 1.0 and math.isfinite(m["log_loss"]) and math.isfinite(m["ne"])
    probs = predict(model, valid)
    assert probs.shape == (len(valid),) and ((probs > 0) & (probs < 1)).all()


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(["train", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_on_criteo_prints_the_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "out" / "run.json"
    args = ["--model", "dhen", "--data", str(CRITEO), "--steps", "2", "--set", "dim=8"]
    code, out, err = run_cli([*args, "--set", "layers=1", *QUIET, "--json", str(path)], capsys)
    assert code == 0, err
    for label in ("AUC (held out)", "log loss", "normalized entropy", "examples/s", "steps"):
        assert label in out
    s = json.loads(path.read_text())
    assert s["model"] == "dhen" and s["steps"] == 2 and s["examples_per_s"] > 0
    assert set(s["metrics"]) == {"auc", "log_loss", "ne"}
    assert (s["train_rows"], s["valid_rows"]) == (160, 40)
    assert s["describe"]["config"]["dim"] == 8 and s["describe"]["config"]["layers"] == 1
    assert s["data_report"]["missing_dense"]["I12"] == 157  # the whole file's counts
    assert s["data_report"]["buckets"]["C1"] == 64


def test_cli_on_synthetic_reports_the_bayes_auc(tmp_path, capsys):
    path = tmp_path / "run.json"
    args = ["--model", "wukong", "--rows", "400", "--steps", "2", "--set", "dim=8"]
    code, out, err = run_cli([*args, "--eval-every", "1", *QUIET, "--json", str(path)], capsys)
    assert code == 0, err
    assert "Bayes AUC (held out)" in out and "320 / 80" in out
    s = json.loads(path.read_text())
    assert [h["step"] for h in s["history"]] == [1, 2] and 0.5 < s["bayes_auc"] < 1
    assert s["data_report"]["source"] == "synthetic" and "pairs" in s["data_report"]["planted"]


def test_cli_checkpoint_resume_and_another_config(tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    base = ["--model", "interformer", "--data", str(TAOBAO), "--set", "dim=8", *QUIET]
    base += ["--checkpoint", str(ckpt)]
    code, _, err = run_cli([*base, "--steps", "2"], capsys)
    assert code == 0 and ckpt.exists(), err
    path = tmp_path / "resumed.json"
    code, _, err = run_cli([*base, "--steps", "4", "--resume", "--json", str(path)], capsys)
    assert code == 0, err
    s = json.loads(path.read_text())
    assert s["steps"] == 4 and [h["step"] for h in s["history"]] == [4]
    assert checkpoint.read(ckpt)["step"] == 4

    other = [a if a != "dim=8" else "dim=16" for a in base]
    code, out, err = run_cli([*other, "--steps", "6", "--resume"], capsys)
    assert code == 2 and out == ""
    assert "cannot resume from" in err and "another model or config" in err
    assert "config.dim: model 16, checkpoint 8" in err and "Traceback" not in err
    assert checkpoint.read(ckpt)["step"] == 4  # left alone


def write_bad_label_file(tmp_path) -> str:
    path = tmp_path / "bad.csv"
    path.write_text("clk,user,click_sequence\n0,u1,a\n7,u2,b\n")
    return str(path)


def write_junk_checkpoint(tmp_path) -> str:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    return str(path)


BAD = {
    "unknown model": (["--model", "nope"], "--model must be one of wukong, dhen"),
    "missing file": (["--model", "wukong", "--data", "/no/such.csv"], "no such file"),
    "no sequence": (["--model", "interformer", "--data", str(CRITEO)], "needs at least one seq"),
    "config field": (["--model", "wukong", "--set", "nope=1"], r"has no fields \['nope'\]"),
    "set syntax": (["--model", "wukong", "--set", "dim"], "--set takes KEY=VALUE"),
    "resume alone": (["--model", "wukong", "--resume"], "--resume needs --checkpoint"),
    "negative steps": (["--model", "wukong", "--steps", "-1"], "--steps: must be an int >= 0"),
    # every value is checked by argparse before any work: the flag, what, and the value
    "lr nan": (
        ["--model", "wukong", "--lr", "nan"],
        r"--lr: must be a finite number > 0, got 'nan'",
    ),
    "lr -1": (["--model", "wukong", "--lr", "-1"], r"--lr: must be a finite number > 0, got '-1'"),
    "embedding lr": (["--model", "wukong", "--embedding-lr", "-0.5"], r"--embedding-lr: .*'-0.5'"),
    "valid fraction": (
        ["--model", "wukong", "--valid-fraction", "1"],
        r"--valid-fraction: .*\(0, 1\)",
    ),
    "buckets 2.5": (
        ["--model", "wukong", "--buckets", "2.5"],
        r"--buckets: must be an int >= 2, got '2.5'",
    ),
    "batch size 0": (
        ["--model", "wukong", "--batch-size", "0"],
        r"--batch-size: must be an int >= 1",
    ),
    # --set values of the config field's type, and a build failure names the --set
    "checkpoint a dir": (
        ["--model", "wukong", "--checkpoint", "/"],
        r"--checkpoint: must be a file path, got '/' \(a directory\)",
    ),
    "json a dir": (["--model", "wukong", "--json", "/tmp"], r"--json: must be a file path"),
    "set dim=-3": (
        ["--model", "wukong", "--set", "dim=-3"],
        r"--set dim: must be an int >= 0, got -3",
    ),
    "set dim=abc": (
        ["--model", "wukong", "--set", "dim=abc"],
        r"--set dim: must be an int >= 0, got 'abc'",
    ),
    "set heads=0": (
        ["--model", "dhen", "--set", "heads=0"],
        r"cannot build dhen with --set heads=0",
    ),
    "set hidden": (
        ["--model", "dhen", "--set", "dense_hidden=[8,-1]"],
        r"--set dense_hidden: must be a list of ints",
    ),
    "set a bool": (
        ["--model", "dhen", "--set", "check_inputs=1"],
        r"--set check_inputs: must be true or false",
    ),
    "bad label": (["--model", "dhen", "--data", write_bad_label_file], "line 3 .*got '7'"),
    "backend here": (["--model", "dhen", "--backend", "cuda", "--device", "cpu"], "cannot run"),
    "junk checkpoint": (
        ["--model", "wukong", "--resume", "--checkpoint", write_junk_checkpoint],
        "cannot resume from .*junk.pt",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, case):
    args, message = BAD[case]
    args = [a(tmp_path) if callable(a) else a for a in args]
    code, out, err = run_cli(["--rows", "200", "--steps", "1", *QUIET, *args], capsys)
    assert code == 2 and out == ""
    assert err.startswith("recperf train: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_cli_cuda_without_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli(["--model", "wukong", "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA device" in err


def test_cli_recipe_and_backend_choices_are_checked_by_argparse(capsys):
    assert main(["train", "--model", "wukong", "--recipe", "fp4"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fp4'" in err and len(err.strip().splitlines()) == 1
