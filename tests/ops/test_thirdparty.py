"""The optional third-party backends of linear_norm: torchao (installable here, so
tested), and Transformer Engine (not installable on our machines: only its refusal)."""

from __future__ import annotations

import math

import pytest
import torch
from numerics import rel_err

import recperf
from recperf.ops.linear_norm_ref import linear_norm_ref

torchao = pytest.importorskip("torchao")


def test_torchao_tensorwise_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, generator=g, requires_grad=True)
    w = (torch.randn(48, 64, generator=g) / 8).requires_grad_(True)
    nw, nb = torch.rand(48, generator=g) + 0.5, torch.randn(48, generator=g)
    y = recperf.linear_norm(x, w, None, None, nw, nb, recipe="fp8_tensorwise", backend="torchao")
    exact = linear_norm_ref(
        x.double(), w.double(), None, None, nw.double(), nb.double(), "layer", 1e-5, "fp32"
    )
    assert -20 * math.log10(rel_err(y, exact)) >= 25
    ours = recperf.linear_norm(x, w, None, None, nw, nb, recipe="fp8_tensorwise", backend="torch")
    assert rel_err(y, ours) < 0.05  # two FP8 implementations, not the same codes
    grad = torch.randn(32, 48, generator=g)
    y.backward(grad)
    xr, wr = x.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    linear_norm_ref(xr, wr, None, None, nw.double(), nb.double(), "layer", 1e-5, "fp32").backward(
        grad.double()
    )
    assert rel_err(x.grad, xr.grad) < 0.1 and rel_err(w.grad, wr.grad) < 0.1


def test_torchao_declines_what_it_cannot_run():
    x, w = torch.randn(4, 16), torch.randn(8, 16)
    with pytest.raises(ValueError, match=r"recipe 'bf16' is not supported here"):
        recperf.linear_norm(x, w, recipe="bf16", backend="torchao")


def test_transformer_engine_declines_with_a_reason():
    with pytest.raises(
        ValueError, match=r"backend 'te' was forced.*(transformer_engine is not installed|device)"
    ):
        recperf.linear_norm(
            torch.randn(4, 16), torch.randn(8, 16), recipe="fp8_rowwise", backend="te"
        )
