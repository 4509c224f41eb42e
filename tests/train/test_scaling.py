"""`recperf scaling`: a tiny sweep writes the table, the JSON and the PNG, with FLOPs per
example growing along the ladder; bad sizes are clear errors."""

from __future__ import annotations

import itertools
import json

import pytest

from recperf.cli import main
from recperf.train.scaling import WUKONG_SIZES


def test_tiny_sweep_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["scaling", "--sizes", "xs,s", "--rows", "3000", "--steps", "4", "--batch-size", "64"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "scaling.json").read_text())["rows"]
    assert [r["size"] for r in rows] == ["xs", "s"]
    assert rows[0]["flops_per_example"] < rows[1]["flops_per_example"]
    assert rows[0]["params"]["dense"] < rows[1]["params"]["dense"]
    for r in rows:
        assert 0 < r["auc"] < 1 and r["ne"] > 0 and 0.5 < r["bayes_auc"] < 1
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "FLOPs per example vs held-out NE" in capsys.readouterr().out


def test_ladder_grows_every_knob():
    rungs = list(WUKONG_SIZES.values())
    for small, big in itertools.pairwise(rungs):
        for knob in ("layers", "n_f", "n_l", "k"):
            assert big[knob] >= small[knob]
        assert max(big["fm_hidden"]) > max(small["fm_hidden"])


@pytest.mark.parametrize(
    "args, message",
    [(["--sizes", "xs,huge"], "--sizes must name sizes"), (["--model", "dhen"], "--model must be")],
)
def test_bad_arguments(args, message, capsys, tmp_path):
    assert main(["scaling", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
