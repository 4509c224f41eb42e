"""The modules' constructors and forwards: a wrong Python type is a TypeError naming the
argument, raised at the boundary (issue 20, class 5), not deep inside torch.empty."""

from __future__ import annotations

import pytest
import torch

from recperf.nn import FMInteraction, GroupedLinearNorm, LinearNorm


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FMInteraction(True, rank=2), "num_features must be an int, got bool"),
        (lambda: FMInteraction(4, rank=2.0), r"rank must be an int or None, got float"),
        (lambda: FMInteraction(4, 2, include_self="yes"), "include_self must be a bool, got str"),
        (lambda: FMInteraction(4, 2, eps="1e-5"), "eps must be a float, got str"),
        (lambda: FMInteraction(4, 2, mode=None), "mode must be a str, got NoneType"),
        (lambda: LinearNorm(True, 3), "in_features must be an int, got bool"),
        (lambda: LinearNorm(4, 3, eps="1e-5"), "eps must be a float, got str"),
        (lambda: LinearNorm(4, 3, norm=None), "norm must be a str, got NoneType"),
        (lambda: LinearNorm(4, 3, bias="no"), "bias must be a bool, got str"),
        (lambda: LinearNorm(4, 3, backend=None), "backend must be a str, got NoneType"),
        (lambda: GroupedLinearNorm(2.0, 4, 3), "groups must be an int, got float"),
        (lambda: GroupedLinearNorm(2, 4, 3, elementwise_affine=1), "elementwise_affine must"),
    ],
)
def test_constructor_argument_types(make, message):
    with pytest.raises(TypeError, match=message):
        make()


@pytest.mark.parametrize("mode", ["projected_norm", "projected", "pairwise"])
def test_fm_forward_none(mode):
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got NoneType"):
        FMInteraction(4, 2, mode=mode)(None)


def test_linear_norm_forward_types():
    module = LinearNorm(4, 3, recipe="fp32")
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got NoneType"):
        module(None)
    with pytest.raises(TypeError, match=r"^residual must be a torch.Tensor or None, got float"):
        module(torch.randn(2, 4), 1.0)
    module.eps = "1e-5"  # a plain attribute, checked where it is used
    with pytest.raises(TypeError, match=r"^eps must be a float, got str"):
        module(torch.randn(2, 4))
    grouped = GroupedLinearNorm(2, 4, 3, recipe="fp32")
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got NoneType"):
        grouped(None)


def test_valid_arguments_still_build():
    assert FMInteraction(4, 2, eps=1).eps == 1  # an int is a float
    assert LinearNorm(4, 3, eps=1e-6, norm="rms", bias=False).norm == "rms"
