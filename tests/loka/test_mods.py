"""Each model adaptation, tested for what it changes (and what it must not)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recperf.loka import mods
from recperf.loka.sites import find_sites
from recperf.nn import LinearNorm


def rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_fold_biases_is_exact_for_layernorm_and_drops_a_constant_bias():
    torch.manual_seed(0)
    layer = LinearNorm(6, 5, recipe="fp32")
    const = LinearNorm(5, 5, recipe="fp32")
    rms = LinearNorm(5, 5, norm="rms", recipe="fp32")
    with torch.no_grad():
        const.bias.fill_(0.7)
        for m in (layer, rms):
            m.bias.normal_()
    model = nn.Sequential(layer, nn.ReLU(), const, nn.ReLU(), rms)
    x = torch.randn(9, 6)
    before = model(x)
    b_layer, b_rms = layer.bias.clone(), rms.bias.clone()
    mods.fold_biases(model)
    assert rel(model(x), before) < 1e-5
    assert torch.allclose(layer.bias, b_layer - b_layer.mean(), atol=1e-6)
    assert layer.bias.mean().abs() < 1e-6
    assert const.bias is None  # a constant bias cancels in LayerNorm
    assert torch.equal(rms.bias, b_rms)  # RMSNorm keeps its mean: nothing exact to fold
    # a non-constant bias is not removable: dropping it changes the output
    dropped = LinearNorm(6, 5, recipe="fp32")
    dropped.load_state_dict(layer.state_dict())
    dropped.bias = None
    assert rel(dropped(x), layer(x)) > 1e-3


def test_fold_biases_into_a_following_linear_in_a_sequential():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    before = model(x)
    mods.fold_biases(model)
    assert model[0].bias is None and model[1].bias is not None
    assert model[3].bias is not None  # after a ReLU: not foldable
    assert rel(model(x), before) < 1e-6


def test_drop_biases_removes_every_linear_bias_only():
    model = nn.Sequential(LinearNorm(4, 4), nn.Linear(4, 2), nn.LayerNorm(2))
    mods.drop_biases(model)
    assert model[0].bias is None and model[1].bias is None
    assert model[0].norm_bias is not None and model[2].bias is not None
    model(torch.randn(3, 4)).sum().backward()


def test_blockwise_norm_normalizes_each_block():
    torch.manual_seed(2)
    norm = nn.LayerNorm(8)
    with torch.no_grad():
        norm.weight.normal_()
    model = nn.Sequential(nn.Linear(4, 8), norm, nn.Linear(8, 2), nn.LayerNorm(2))
    mods.blockwise_norm(model, block=4)
    assert isinstance(model[1], mods.BlockLayerNorm)
    assert model[1].weight is norm.weight  # same parameters
    assert isinstance(model[3], nn.LayerNorm)  # 2 is not above the block: untouched
    x = torch.randn(16, 8) * torch.tensor([1.0, 1, 1, 1, 100, 100, 100, 100])
    model[1].weight.data.fill_(1.0)
    y = model[1](x).view(16, 2, 4)
    assert torch.allclose(y.mean(-1), torch.zeros(16, 2), atol=1e-5)
    assert torch.allclose(y.var(-1, unbiased=False), torch.ones(16, 2), atol=1e-3)
    with pytest.raises(ValueError, match="block must divide features=8, got 3"):
        mods.BlockLayerNorm(8, 3)
    with pytest.raises(ValueError, match="block must be an int >= 1, got 0"):
        mods.blockwise_norm(model, block=0)


def test_hardswish_replaces_silu_modules():
    model = nn.Sequential(nn.Linear(3, 3), nn.SiLU(), nn.Sequential(nn.SiLU(), nn.ReLU()))
    mods.hardswish(model)
    kinds = [type(m) for m in model.modules()]
    assert nn.SiLU not in kinds and kinds.count(nn.Hardswish) == 2 and nn.ReLU in kinds
    x = torch.linspace(-5, 5, 11)
    assert torch.equal(model[1](x), nn.functional.hardswish(x))


def test_keep_bf16_pins_first_last_and_named_layers():
    model = nn.Sequential(
        LinearNorm(4, 4, recipe="fp32"), LinearNorm(4, 4, recipe="fp32"), nn.Linear(4, 2)
    )
    mods.keep_bf16(model)
    sites = {s.name: s for s in find_sites(model)}
    assert sites["0"].pinned == "bf16" and model[0].recipe == "bf16"
    assert sites["2"].pinned == "bf16" and sites["1"].pinned is None
    assert model[1].recipe == "fp32"
    mods.keep_bf16(model, ["1"])
    assert model[1].recipe == "bf16"
    with pytest.raises(
        ValueError, match="layers must name probed layers or 'first' / 'last', got 'x'"
    ):
        mods.keep_bf16(model, ["x"])
    with pytest.raises(
        TypeError, match="layers must be a sequence of names, got the string 'first'"
    ):
        mods.keep_bf16(model, "first")
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got str"):
        mods.hardswish("model")
