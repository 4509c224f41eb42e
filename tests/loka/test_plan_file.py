"""DispatchPlan JSON round trip; bad files refused with clear messages; apply's refusals,
its bf16 fallback for missing layers, and nn.Linear conversion."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from recperf.loka.apply import apply
from recperf.loka.dispatch_plan import DispatchPlan, LayerChoice
from recperf.loka.sites import Shape, model_name
from recperf.loka.stack import LinearNormStack
from recperf.nn import LinearNorm


def stack() -> LinearNormStack:
    torch.manual_seed(0)
    return LinearNormStack((8, 8, 8), out=3)


def plan_for(model: nn.Module, **override) -> DispatchPlan:
    layers = {
        "body.0": LayerChoice(
            "body.0",
            "linear_norm",
            Shape(8, 8),
            "fp8_rowwise",
            "triton",
            "fastest",
            1.5,
            {"forward": 0.03, "dgrad": 0.05, "wgrad": 0.06},
            1e-5,
        ),
        "body.2": LayerChoice("body.2", "linear_norm", Shape(8, 8), "bf16", "cpp", "slow"),
        "head": LayerChoice("head", "linear", Shape(8, 3), "fp8_rowwise_gw_hp", "torch", "x"),
    }
    layers.update(override)
    return DispatchPlan(
        model_name(model),
        layers,
        0.1,
        1.05,
        "h100",
        "cost model",
        "cpu",
        {"torch": torch.__version__, "recperf": "0.1.0"},
    )


def test_round_trip(tmp_path):
    model = stack()
    original = plan_for(model)
    path = original.save(tmp_path / "plan.json")
    payload = json.loads(path.read_text())
    assert payload["format"] == "recperf.loka.plan" and payload["version"] == 1
    assert payload["layers"]["body.0"]["shape"] == {
        "in_features": 8,
        "out_features": 8,
        "groups": 0,
    }
    assert payload["versions"]["torch"] == torch.__version__ and payload["target"] == "h100"
    loaded = DispatchPlan.load(path)
    assert loaded.layers == original.layers
    assert (loaded.model, loaded.budget, loaded.timing) == (original.model, 0.1, "cost model")


def corrupt(payload: dict, path: str, value) -> dict:
    payload = json.loads(json.dumps(payload))
    *keys, last = path.split("/")
    node = payload
    for k in keys:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "format",
            "something.else",
            "not a LoKA plan: format must be 'recperf.loka.plan', got 'something.else'",
        ),
        ("version", 2, "format version 2 is not supported: this recperf reads version 1"),
        ("version", KeyError, "format version None is not supported"),
        ("layers", KeyError, "field 'layers' must be a dict, got nothing"),
        ("budget", "big", "budget must be a number >= 0, got 'big'"),
        ("layers/body.0/recipe", "fp4", "layer 'body.0': recipe must be one of"),
        ("layers/body.0/backend", "magic", "layer 'body.0': backend must be one of"),
        ("layers/body.0/kind", "conv", "layer 'body.0': kind must be one of"),
        ("layers/body.0/shape", {"in_features": 8}, "layer 'body.0': shape must hold"),
        ("layers/body.2", [1, 2], "layer 'body.2' must be an object, got list"),
        # wrong types inside (AttributeError or silently kept before)
        ("layers/body.0/errors", [0.1], "layer 'body.0': errors must map each direction"),
        ("layers/body.0/errors/forward", "low", "layer 'body.0': errors must map each"),
        ("layers/body.0/speedup", "fast", "layer 'body.0': speedup must be a finite number"),
        ("layers/body.0/time_s", [1e-5], "layer 'body.0': time_s must be a finite number"),
        ("layers/body.0/shape/groups", 1.5, "layer 'body.0': shape must hold"),
        ("versions/torch", 2, r"versions\['torch'\] must be a str, got int"),
        ("metric", ["rel_fro"], "field 'metric' must be a str, got list"),
        ("budget", [[[[1]]]], r"budget must be a number >= 0, got \[\[\[\[1\]\]\]\]"),
    ],
)
def test_bad_plans_are_refused(path, value, message):
    payload = corrupt(plan_for(stack()).as_dict(), path, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DispatchPlan.from_dict(payload, "p.json")


def test_not_json_and_not_a_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "recperf.loka.plan", "version": 1, "lay')
    with pytest.raises(ValueError, match=r"plan .*bad.json: not valid JSON"):
        DispatchPlan.load(bad)
    with pytest.raises(ValueError, match="cannot be read"):
        DispatchPlan.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"not a LoKA plan: format must be .* got 'list'"):
        DispatchPlan.from_json("[1, 2]")


def nested(depth: int) -> bytes:
    """A plan whose body.0 forward error is a list nested ``depth`` deep."""
    payload = corrupt(plan_for(stack()).as_dict(), "layers/body.0/errors/forward", "@@")
    return json.dumps(payload).replace('"@@"', "[" * depth + "]" * depth).encode()


FILES = {
    "latin-1": (
        '{"format": "recperf.loka.plan", "model": "caf\xe9"}'.encode("latin-1"),
        "not UTF-8",
    ),
    "UTF-16": ('{"format": "recperf.loka.plan"}'.encode("utf-16"), "not UTF-8"),
    "binary": (bytes(range(256)), "not UTF-8"),
    "nested past the parser": (nested(100_000), "nested too deeply"),
    "nested but parsable": (nested(500), "errors must map each direction"),
    "an integer too long": (b'{"version": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "empty": (b"", "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_bad_file_is_one_value_error_naming_it(tmp_path, case):
    content, message = FILES[case]
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"plan {path}.*{message}"):
        DispatchPlan.load(path)


def test_apply_sets_recipes_and_backends_and_converts_linear():
    model = stack()
    head_weight = model.head.weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    apply(model, plan_for(model))
    assert (model.body[0].recipe, model.body[0].backend) == ("fp8_rowwise", "triton")
    assert (model.body[2].recipe, model.body[2].backend) == ("bf16", "cpp")
    assert isinstance(model.head, LinearNorm) and model.head.norm == "none"
    assert model.head.weight is head_weight  # the same Parameter: the optimizer still sees it
    assert (model.head.recipe, model.head.backend) == ("fp8_rowwise_gw_hp", "torch")
    assert set(model.state_dict()) == set(stack().state_dict())
    # applying the plan again (the head is now a LinearNorm made from a Linear) works
    apply(model, plan_for(model), use_backends=False)
    assert model.body[0].backend == "auto"
    model(torch.randn(4, 8)).sum().backward()
    opt.step()


def test_apply_refuses_another_model_shape_or_layer_before_changing_anything():
    model = stack()
    with pytest.raises(
        ValueError, match=r"plan was made for model .*Other, not for .*LinearNormStack"
    ):
        apply(model, DispatchPlan("tests.Other", {}, 0.1, 1.05, "h100", "", "cpu", {}))
    wrong = plan_for(
        model, **{"body.2": LayerChoice("body.2", "linear_norm", Shape(8, 16), "bf16", "auto", "")}
    )
    with pytest.raises(
        ValueError,
        match=r"layer 'body.2' is linear_norm 8->8 in the model but linear_norm 8->16 in the plan",
    ):
        apply(model, wrong)
    extra = plan_for(
        model, **{"body.9": LayerChoice("body.9", "linear_norm", Shape(8, 8), "bf16", "auto", "")}
    )
    with pytest.raises(ValueError, match=r"does not have: \['body.9'\]"):
        apply(model, extra)
    assert model.body[0].recipe == "fp32" and type(model.head) is nn.Linear  # untouched


def test_missing_layer_falls_back_to_bf16_with_a_warning():
    model = stack()
    partial = plan_for(model)
    del partial.layers["body.2"]
    model.body[2].recipe = "fp32"
    with pytest.warns(
        UserWarning, match=r"no entry for 1 layer\(s\), which get bf16: \['body.2'\]"
    ):
        apply(model, partial)
    assert (model.body[2].recipe, model.body[2].backend) == ("bf16", "auto")


def test_apply_checks_its_arguments():
    with pytest.raises(TypeError, match="plan must be a DispatchPlan or a path, got int"):
        apply(stack(), 3)
