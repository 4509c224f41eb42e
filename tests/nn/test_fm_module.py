"""recperf.nn.FMInteraction: shapes, parameters, agreement with the functional ops,
training, and argument errors."""

from __future__ import annotations

import pytest
import torch
from numerics import assert_close

import recperf
from recperf.nn import FMInteraction
from recperf.ops import fm_ref


@pytest.mark.parametrize(
    "mode,kwargs,shape",
    [
        ("projected_norm", {"rank": 3}, (4, 21)),
        ("projected", {"rank": 3}, (4, 7, 3)),
        ("pairwise", {}, (4, 21)),
        ("pairwise", {"include_self": True}, (4, 28)),
    ],
)
def test_output_shape_and_reference(mode, kwargs, shape):
    torch.manual_seed(0)
    module = FMInteraction(7, mode=mode, **kwargs)
    x = torch.randn(4, 7, 10)
    out = module(x)
    assert out.shape == shape and (4, *module.out_shape) == shape
    xd = x.double()
    if mode == "pairwise":
        ref = fm_ref.fm_pairwise_ref(xd, module.include_self)
    elif mode == "projected":
        ref = fm_ref.fm_projected_ref(xd, module.proj.double())
    else:
        ref = fm_ref.fm_projected_norm_ref(
            xd, module.proj.double(), module.weight.double(), module.bias.double()
        )
    assert_close(out, ref, torch.float32, mode)


def test_parameters_and_state_dict():
    module = FMInteraction(6, rank=2)
    assert {n for n, _ in module.named_parameters()} == {"proj", "weight", "bias"}
    assert module.proj.shape == (6, 2) and module.weight.shape == (12,)
    assert torch.equal(module.weight, torch.ones(12)) and torch.equal(module.bias, torch.zeros(12))
    assert abs(module.proj.std().item() - 6**-0.5) < 0.3
    assert list(FMInteraction(6, mode="pairwise").parameters()) == []
    assert {
        n for n, _ in FMInteraction(6, rank=2, elementwise_affine=False).named_parameters()
    } == {"proj"}
    clone = FMInteraction(6, rank=2)
    clone.load_state_dict(module.state_dict())
    x = torch.randn(3, 6, 5)
    assert torch.equal(clone(x), module(x))


def test_learns_a_planted_interaction():
    """A linear head on FMInteraction fits a target made of one pairwise dot."""
    torch.manual_seed(0)
    fm = FMInteraction(4, mode="pairwise")
    head = torch.nn.Linear(6, 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    x = torch.randn(256, 4, 3)
    y = (x[:, 0] * x[:, 2]).sum(-1, keepdim=True)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(head(fm(x)), y)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    assert head.weight.abs().argmax().item() == 1  # pair (0, 2) is the second pair


def test_backend_is_passed_to_the_op():
    module = FMInteraction(3, rank=2, backend="cuda")
    with pytest.raises(ValueError, match="backend 'cuda' was forced"):
        module(torch.randn(2, 3, 4))


def test_bf16_module():
    module = FMInteraction(5, rank=2, dtype=torch.bfloat16)
    x = torch.randn(3, 5, 8, dtype=torch.bfloat16, requires_grad=True)
    out = module(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and module.proj.grad.dtype == torch.bfloat16
    assert torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"num_features": 4, "mode": "cross"}, "mode must be one of"),
        ({"num_features": 0, "rank": 2}, "num_features must be a positive int"),
        ({"num_features": 4}, "rank must be a positive int for mode 'projected_norm'"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        FMInteraction(**kwargs)


def test_repr():
    assert "rank=2" in repr(FMInteraction(4, rank=2)) and "pairwise" in repr(
        FMInteraction(4, mode="pairwise")
    )
    assert recperf.nn.FMInteraction is FMInteraction
