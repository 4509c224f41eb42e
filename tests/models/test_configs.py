"""Model configs check themselves when built; Wukong's knobs (dropout, MLP norm, plain FM,
final norm, per-layer widths, the without-FMB / without-LCB ablations) change the model as
documented and keep matching the plain-torch twin."""

from __future__ import annotations

import pytest
import torch
from numerics import assert_close

from recperf.models import (
    DHENConfig,
    DMTConfig,
    InterFormerConfig,
    ModelConfig,
    WukongConfig,
    build_model,
    param_counts,
    torch_twin,
)
from recperf.models.attention import MultiHeadAttention
from recperf.models.counting import example_batch

BAD = [
    (ModelConfig, {"dim": 0}, ValueError, r"dim must be >= 1, got 0"),
    (ModelConfig, {"dim": 2.5}, TypeError, r"dim must be an int, got float 2.5"),
    (ModelConfig, {"dim": True}, TypeError, r"dim must be an int, got bool"),
    (ModelConfig, {"dense_hidden": (64, 0)}, ValueError, r"dense_hidden\[1\] must be >= 1"),
    (ModelConfig, {"over_hidden": 64}, TypeError, r"over_hidden must be a tuple of ints"),
    (ModelConfig, {"pooling": "max"}, ValueError, r"pooling must be one of"),
    (ModelConfig, {"recipe": "fp7"}, ValueError, r"recipe must be one of"),
    (ModelConfig, {"backend": "gpu"}, ValueError, r"backend must be one of"),
    (ModelConfig, {"check_inputs": 1}, TypeError, r"check_inputs must be a bool"),
    (ModelConfig, {"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    (ModelConfig, {"dropout": -0.1}, ValueError, r"dropout must be in \[0, 1\)"),
    (ModelConfig, {"dropout": "0.1"}, TypeError, r"dropout must be a float"),
    (ModelConfig, {"mlp_norm": "group"}, ValueError, r"mlp_norm must be one of"),
    (WukongConfig, {"n_f": -1}, ValueError, r"n_f must be >= 0, got -1"),
    (WukongConfig, {"n_f": 0, "n_l": 0}, ValueError, r"n_f and n_l are both 0 in layer 0"),
    (WukongConfig, {"n_f": (4, 0), "n_l": (4, 0)}, ValueError, r"both 0 in layer 1"),
    (WukongConfig, {"layers": 0}, ValueError, r"layers must be >= 1, got 0"),
    (WukongConfig, {"k": 0}, ValueError, r"k must be >= 1, got 0"),
    (WukongConfig, {"n_f": (4, 4, 4)}, ValueError, r"n_f must give one value per layer \(2\)"),
    (WukongConfig, {"fm_hidden": ((8,),)}, ValueError, r"fm_hidden must give one value per"),
    (WukongConfig, {"fm": "full"}, ValueError, r"fm must be one of \('projected', 'plain'\)"),
    (WukongConfig, {"final_norm": None}, TypeError, r"final_norm must be a bool"),
    (WukongConfig, {"dense_tokens": 0}, ValueError, r"dense_tokens must be >= 1, got 0"),
    (WukongConfig, {"dense_tokens": "all"}, TypeError, r"dense_tokens must be an int"),
    (WukongConfig, {"sparse_embeddings": (2, 0)}, ValueError, r"sparse_embeddings\[1\] must"),
    (DHENConfig, {"modules": ()}, ValueError, r"modules must be a non-empty tuple"),
    (DHENConfig, {"ensemble": "max"}, ValueError, r"ensemble must be one of"),
    (DHENConfig, {"tokens": 0}, ValueError, r"tokens must be >= 1, got 0"),
    (DHENConfig, {"heads": 0}, ValueError, r"heads must be >= 1, got 0"),
    (DHENConfig, {"heads": 3}, ValueError, r"dim 16 must split into heads=3"),
    (DHENConfig, {"conv_kernel": 2}, ValueError, r"conv_kernel must be odd, got 2"),
    (DHENConfig, {"dcn_rank": -2}, ValueError, r"dcn_rank must be >= 1, got -2"),
    (InterFormerConfig, {"heads": 0}, ValueError, r"heads must be >= 1, got 0"),
    (InterFormerConfig, {"heads": 16}, ValueError, r"heads of even size \(RoPE\)"),
    (InterFormerConfig, {"pma_tokens": -1}, ValueError, r"pma_tokens must be >= 0, got -1"),
    (InterFormerConfig, {"cls_tokens": 0}, ValueError, r"cls_tokens must be >= 1, got 0"),
    (InterFormerConfig, {"interaction_modules": ("moe",)}, ValueError, "interaction_modules"),
    (DMTConfig, {"towers": 0}, ValueError, r"towers must be >= 1, got 0"),
    (DMTConfig, {"backbone": "dlrm"}, ValueError, r"backbone must be one of"),
    (DMTConfig, {"partition": ((0,), ())}, ValueError, r"partition\[1\] must be a non-empty"),
    (DMTConfig, {"backbone_config": DHENConfig()}, TypeError, r"must be a WukongConfig"),
]


@pytest.mark.parametrize(("cls", "fields", "error", "match"), BAD)
def test_bad_config_names_the_field(cls, fields, error, match):
    with pytest.raises(error, match=match):
        cls(**fields)


def test_attention_refuses_zero_heads():
    with pytest.raises(ValueError, match=r"heads must be >= 1, got 0"):
        MultiHeadAttention(16, 0)


def test_lists_from_json_are_accepted():
    c = WukongConfig(fm_hidden=[8, 8], n_f=[2, 3], dense_hidden=[4])
    assert c.dense_hidden == (4,) and c.layer_widths(1) == (3, 8, 8, (8, 8))


def _outputs(model, batch):
    model.zero_grad(set_to_none=True)
    out = model(batch)
    out.square().sum().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters()}


KNOBS = [
    {"n_f": 0},
    {"n_l": 0},
    {"fm": "plain"},
    {"final_norm": False},
    {"mlp_norm": "batch"},
    {"mlp_norm": "none"},
    {"n_f": (3, 5), "n_l": (2, 0), "k": (2, 4), "fm_hidden": ((8,), ())},
    {"dense_tokens": "per_feature"},
    {"dense_tokens": 3},
    {"sparse_embeddings": (1, 3, 1, 2, 1)},
]


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: ",".join(k))
def test_wukong_knob_trains_every_parameter_and_matches_twin(knobs, tiny_spec):
    """No dead parameters (the ablations build none for the missing block): every one gets
    a gradient; the twin with the same weights gives the same logits and gradients."""
    torch.manual_seed(0)
    _matches_twin_and_trains_all(build_model("wukong", tiny_spec, dim=8, **knobs), knobs, tiny_spec)


def _matches_twin_and_trains_all(model, knobs, tiny_spec):
    twin = torch_twin(model)
    batch = example_batch(tiny_spec, 5, seed=3)
    out, grads = _outputs(model, batch)
    ref, ref_grads = _outputs(twin, batch)
    dead = [n for n, g in grads.items() if g is None or not g.any()]
    assert not dead, f"{knobs}: parameters without gradient {dead}"
    assert_close(out, ref, torch.float32, f"{knobs} logits", 2e-5)
    # The whole gradient: under BatchNorm a bias feeding its linear gets a gradient that
    # cancels to rounding noise (a constant shift is normalized away).
    names = sorted(grads)
    flat = [torch.cat([g[n].flatten() for n in names]) for g in (grads, ref_grads)]
    assert_close(flat[0], flat[1], torch.float32, f"{knobs} gradient", 1e-4)


@pytest.mark.parametrize(
    "knobs",
    [
        {"personalized_ffn": False},
        {"rope": False, "heads": 8},
        {"dropout": 0.0, "mlp_norm": "batch"},
    ],
    ids=lambda k: ",".join(k),
)
def test_interformer_knob_trains_every_parameter_and_matches_twin(knobs, tiny_spec):
    torch.manual_seed(0)
    model = build_model("interformer", tiny_spec, dim=8, **knobs)
    if not knobs.get("personalized_ffn", True):
        assert all(layer.pffn is None and layer.x_summary is None for layer in model.body.layers)
    _matches_twin_and_trains_all(model, knobs, tiny_spec)


def _count(spec, **knobs):
    torch.manual_seed(0)
    return param_counts(build_model("wukong", spec, dim=8, **knobs))["dense"]


def test_wukong_knobs_change_parameter_count_as_documented(tiny_spec):
    base = _count(tiny_spec)
    d, layers = 8, 2
    assert base - _count(tiny_spec, final_norm=False) == layers * 2 * d
    # Plain FM: the FMB reads n (n + 1) / 2 dots (n = 7 tokens, then 16) through an
    # affine LN, where the projected FM reads n k = 8 n (Y [n, k] and its LN's affine).
    plain = sum(n * (n + 1) // 2 * (2 + 64) - (n * 8 + 2 * n * 8 + n * 8 * 64) for n in (7, 16))
    assert _count(tiny_spec, fm="plain") - base == plain


def test_wukong_extra_tokens_change_the_token_count(tiny_spec):
    """3 dense features, 5 sparse ones, 1 sequence: 7 tokens by default."""

    def n_in(**knobs):
        return build_model("wukong", tiny_spec, dim=8, **knobs).body.layers[0].lcb.in_features

    assert n_in() == 7
    assert n_in(dense_tokens=4) == 10
    assert n_in(dense_tokens="per_feature") == 9
    assert n_in(sparse_embeddings=(1, 3, 1, 2, 1)) == 10
    with pytest.raises(ValueError, match=r"one count per sparse feature \(5\), got \(2,\)"):
        build_model("wukong", tiny_spec, sparse_embeddings=(2,))
    # per_feature drops the dense MLP: no parameters left that never train
    per_feature = build_model("wukong", tiny_spec, dim=8, dense_tokens="per_feature")
    assert per_feature.embedding.dense is None


@pytest.mark.parametrize(("knobs", "absent"), [({"n_f": 0}, ("fm", "mlp")), ({"n_l": 0}, ("lcb",))])
def test_wukong_ablation_builds_no_block(knobs, absent, tiny_spec):
    model = build_model("wukong", tiny_spec, dim=8, **knobs)
    for layer in model.body.layers:
        for name in absent:
            assert getattr(layer, name) is None
    assert _count(tiny_spec, **knobs) < _count(tiny_spec)


def test_dropout_trains_and_evaluates_deterministically(tiny_spec):
    torch.manual_seed(0)
    model = build_model("wukong", tiny_spec, dim=8, dropout=0.3)
    batch = example_batch(tiny_spec, 16, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    model.train()
    assert not torch.equal(model(batch), model(batch)), "dropout must act in train mode"
    model.eval()
    with torch.no_grad():
        first, second = model(batch), model(batch)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    no_dropout = build_model("wukong", tiny_spec, dim=8)
    no_dropout.load_state_dict(model.state_dict())  # dropout adds no parameters
    no_dropout.eval()
    with torch.no_grad():
        assert torch.equal(no_dropout(batch), first)


@pytest.mark.parametrize("name", ["interformer", "dmt"])
def test_mlp_settings_reach_inner_layers(name, tiny_spec):
    """InterFormer's interaction layer and DMT's backbone take the model's MLP settings."""
    model = build_model(name, tiny_spec, dim=8, dropout=0.2, mlp_norm="batch")
    inner = model.body if name == "interformer" else model.towers
    kinds = {type(m) for m in inner.modules()}
    assert torch.nn.BatchNorm1d in kinds and torch.nn.Dropout in kinds
