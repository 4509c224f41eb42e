"""recperf's layers against peer layers rebuilt here in float64 from the papers' equations
(and the public implementations' documented math, e.g. FuxiCTR's WuKong forms the full
X . X^T before projecting, where recperf never forms it), with recperf's weights copied
in: the outputs and the gradients of the input and of every weight agree."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from numerics import assert_close

from recperf.models import DHENConfig, WukongConfig
from recperf.models.dhen import DCNModule, DHENLayer, DotModule
from recperf.models.interformer import PersonalizedFFN, XSummary
from recperf.models.wukong import WukongLayer


def _lin(x, p, name):
    """x . W^T + b of recperf's parameters ``name.weight`` / ``name.bias``."""
    y = x @ p[f"{name}.weight"].T
    return y if f"{name}.bias" not in p else y + p[f"{name}.bias"]


def _feature_axis(x, w):
    """A linear over the token axis: x [B, n, d], w [n_out, n] -> [B, n_out, d]."""
    return torch.einsum("on,bnd->bod", w, x)


def _mlp(h, p, prefix, hidden):
    """The peers' MLP block: [Linear -> LayerNorm -> ReLU] per hidden width, then Linear."""
    for i in range(hidden):
        name = f"{prefix}.layers.{2 * i}"
        z = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        h = F.relu(F.layer_norm(z, z.shape[-1:], p[f"{name}.norm_weight"], p[f"{name}.norm_bias"]))
    last = f"{prefix}.layers.{2 * hidden}"
    return h if f"{last}.weight" not in p else _lin(h, p, last)


def peer_wukong(x, p, n_f):
    """Wukong layer, paper eq.: LN(concat(FMB(X), LCB(X)) + residual(X)) with
    FMB(X) = reshape(MLP(LN(flatten((X . X^T) . Y)))) and LCB(X) = W_L X."""
    B, _, d = x.shape
    fm = (x @ x.transpose(1, 2)) @ p["fm.proj"]  # the full interaction matrix, then Y
    h = F.layer_norm(fm.reshape(B, -1), (fm[0].numel(),), p["fm.weight"], p["fm.bias"])
    fmb = _mlp(h, p, "mlp", 1).view(B, n_f, d)
    lcb = _feature_axis(x, p["lcb.weight"])
    res = x if "residual.weight" not in p else _feature_axis(x, p["residual.weight"])
    return F.layer_norm(torch.cat((fmb, lcb), 1) + res, (d,), p["norm.weight"], p["norm.bias"])


def peer_dhen_dot(x, p):
    """DHEN's dot-product module: <x_i, x_j> for i < j, then the MLP."""
    n = x.shape[1]
    dots = [(x[:, i] * x[:, j]).sum(-1) for i in range(n) for j in range(i + 1, n)]
    return _mlp(torch.stack(dots, 1), p, "mlp", 1)


def peer_dhen_dcn(x, p):
    """DHEN's DCN cross module (low-rank form of the paper's (X X^T) W + b): flattened."""
    return ((x @ x.transpose(1, 2)) @ p["fm.proj"] + p["bias"]).flatten(1)


def peer_dhen_layer(x, p, ensemble, m):
    """DHEN layer, paper eq.: LN(Ensemble(module_i(X) projected to m tokens) + W_s X), over
    the dot, DCN and linear modules."""
    B, _, d = x.shape
    sub = [
        ({k.removeprefix("mods.0."): v for k, v in p.items()}, peer_dhen_dot),
        ({k.removeprefix("mods.1."): v for k, v in p.items()}, peer_dhen_dcn),
        (None, lambda x, _: x.flatten(1)),
    ]
    outs = []
    for i, (params, peer) in enumerate(sub):
        z = _lin(peer(x, params), p, f"projections.{i}")
        w, b = p[f"projections.{i}.norm_weight"], p[f"projections.{i}.norm_bias"]
        outs.append(F.layer_norm(z, z.shape[-1:], w, b).view(B, m, d))
    if ensemble == "concat":
        y = torch.cat(outs, 1)
    else:
        y = sum(w * o for w, o in zip(p["weights"], outs, strict=True))
    y = y + _feature_axis(x, p["shortcut.weight"])
    return F.layer_norm(y, (d,), p["norm.weight"], p["norm.bias"])


def peer_x_summary(x, p):
    """InterFormer's X summary: sigma(G X) * (C X), G and C over the feature axis."""
    c, g = p["proj.weight"].chunk(2, dim=0)
    return _feature_axis(x, c) * torch.sigmoid(_feature_axis(x, g))


def peer_pffn(s, x_sum, p):
    """InterFormer's personalized FFN: LN(S + S . W(X_sum)), W(X_sum) [d, d] per example."""
    d = s.shape[-1]
    w = _lin(x_sum.flatten(1), p, "weight").view(-1, d, d)
    return F.layer_norm(s + s @ w, (d,), p["norm.weight"], p["norm.bias"])


def _check(layer, peer, inputs):
    """recperf (fp32) vs the peer (float64 on copied weights): output and every gradient."""
    mine_in = [t.clone().requires_grad_() for t in inputs]
    out = layer(*mine_in)
    g_out = torch.randn_like(out)
    out.backward(g_out)
    params = {n: q.detach().double().requires_grad_() for n, q in layer.named_parameters()}
    peer_in = [t.detach().double().requires_grad_() for t in inputs]
    ref = peer(*peer_in, params)
    ref.backward(g_out.double())
    what = type(layer).__name__
    assert_close(out, ref, torch.float32, f"{what} output")
    for i, (a, b) in enumerate(zip(mine_in, peer_in, strict=True)):
        assert_close(a.grad, b.grad, torch.float32, f"{what} grad of input {i}")
    for name, q in layer.named_parameters():
        assert_close(q.grad, params[name].grad, torch.float32, f"{what} grad {name}")


@pytest.mark.parametrize("n_in", [7, 16])  # 16 = n_F + n_L: the identity residual
def test_wukong_layer_matches_peer(n_in):
    torch.manual_seed(0)
    config = WukongConfig(dim=8, n_f=5, n_l=11, k=3, fm_hidden=(13,))
    layer = WukongLayer(n_in, config)
    assert (layer.residual is None) == (n_in == 16)
    _check(layer, lambda x, p: peer_wukong(x, p, 5), [torch.randn(6, n_in, 8)])


@pytest.mark.parametrize(
    ("module", "peer"), [(DotModule, peer_dhen_dot), (DCNModule, peer_dhen_dcn)]
)
def test_dhen_module_matches_peer(module, peer):
    torch.manual_seed(0)
    layer = module(7, DHENConfig(dim=8, dot_hidden=(11,), dcn_rank=3))
    with torch.no_grad():
        for q in layer.parameters():
            q.normal_()  # the DCN bias starts at 0: make it count
    _check(layer, peer, [torch.randn(5, 7, 8)])


@pytest.mark.parametrize("ensemble", ["concat", "weighted_sum"])
def test_dhen_layer_matches_peer(ensemble):
    torch.manual_seed(0)
    modules = ("dot", "dcn", "linear")
    c = DHENConfig(
        dim=8, modules=modules, ensemble=ensemble, tokens=3, dot_hidden=(11,), dcn_rank=3
    )
    layer = DHENLayer(7, c)
    assert len(layer.projections) == 3  # distinct widths: one LinearNorm per module
    with torch.no_grad():
        for q in layer.parameters():
            q.normal_(0, 0.5)
    _check(layer, lambda x, p: peer_dhen_layer(x, p, ensemble, 3), [torch.randn(5, 7, 8)])


def test_interformer_x_summary_matches_peer():
    torch.manual_seed(0)
    _check(XSummary(7, 3), peer_x_summary, [torch.randn(5, 7, 8)])


def test_interformer_personalized_ffn_matches_peer():
    torch.manual_seed(0)
    layer = PersonalizedFFN(3, 8)
    _check(layer, peer_pffn, [torch.randn(5, 11, 8), torch.randn(5, 3, 8)])
