"""`recperf probe`: a small run end to end, its plan applies to the same model; errors."""

from __future__ import annotations

import sys

import torch

from recperf.cli import main
from recperf.loka import apply, models
from recperf.loka.dispatch_plan import DispatchPlan


def test_probe_writes_a_plan_that_applies(tmp_path, capsys):
    out = tmp_path / "plan.json"
    argv = [
        "probe",
        "--model",
        "stack",
        "--steps",
        "4",
        "--width",
        "32",
        "--depth",
        "2",
        "--batch",
        "32",
        "--sample-every",
        "2",
        "--target",
        "h100",
        "--target-batch",
        "4096",
        "--keep-bf16",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "LoKA probe of recperf.loka.stack.LinearNormStack" in printed
    assert "forward err" in printed and "choice:" in printed and "cost model" in printed
    assert "timed at M=4096" in printed  # 32 rows a step, scaled to the target's batch
    plan = DispatchPlan.load(out)
    assert plan.target == "h100" and set(plan.layers) == {"body.0", "body.2", "head"}
    assert plan.layers["body.0"].recipe == "bf16" and "pinned" in plan.layers["body.0"].reason
    model = models.stack(width=32, depth=2, batch=32).model
    apply(model, plan, use_backends=False)
    model(torch.randn(3, 32))


def test_probe_reports_bad_arguments_and_a_missing_model(monkeypatch, capsys):
    assert main(["probe", "--steps", "0"]) == 2
    assert "argument --steps: must be an int >= 1, got '0'" in capsys.readouterr().err
    assert main(["probe", "--outliers-at", "1"]) == 2  # the default model is Wukong
    assert "--outliers-at needs --model stack" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "recperf.models", None)  # as if it did not import
    assert main(["probe", "--model", "wukong"]) == 2
    assert "--model wukong needs recperf.models" in capsys.readouterr().err


def test_overhead_flag(capsys):
    assert (
        main(
            [
                "probe",
                "--model",
                "stack",
                "--overhead",
                "--steps",
                "8",
                "--sample-every",
                "2",
                "--width",
                "16",
                "--depth",
                "1",
                "--batch",
                "8",
            ]
        )
        == 0
    )
    assert "probe overhead" in capsys.readouterr().out


def test_probe_of_wukong_by_default(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["probe", "--steps", "4", "--sample-every", "2", "--target", "h200",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "LoKA probe of recperf.models" in capsys.readouterr().out
    plan = DispatchPlan.load(out)
    assert plan.target == "h200"
    assert any(name.startswith("body.layers.0.") for name in plan.layers)
    assert all(layer.recipe in {"bf16", "fp8_tensorwise", "fp8_rowwise", "fp8_rowwise_gw_hp"}
               for layer in plan.layers.values())  # fmt: skip
