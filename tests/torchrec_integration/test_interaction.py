"""recperf.torchrec.InteractionArch is a drop-in for torchrec's DLRM InteractionArch: the
same output and gradients on awkward shapes, checked against a float64 reference too."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchrec")

from torchrec.models.dlrm import InteractionArch as TorchRecInteractionArch

from recperf.torchrec import InteractionArch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("B,F,D", [(1, 1, 1), (3, 7, 5), (17, 26, 16), (2, 0, 4)])
def test_same_output_and_grads_as_torchrecs(B, F, D):
    torch.manual_seed(B * 100 + F)
    dense = torch.randn(B, D, requires_grad=True)
    sparse = torch.randn(B, D, F).transpose(1, 2).requires_grad_()  # non-contiguous
    ours, theirs = InteractionArch(F), TorchRecInteractionArch(F)
    out = ours(dense, sparse)
    ref64 = theirs(dense.double(), sparse.double())
    torch.testing.assert_close(out, theirs(dense, sparse), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.double(), ref64, rtol=1e-5, atol=1e-5)
    if F == 0:
        return
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (dense, sparse), g)
    want = torch.autograd.grad(ref64, (dense, sparse), g.double())
    for a, b in zip(grads, want, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-5)


def test_shape_mismatches_are_value_errors():
    arch = InteractionArch(3)
    with pytest.raises(ValueError, match=r"sparse_features must be \[B, F=3, D\], got \(2, 4, 5\)"):
        arch(torch.randn(2, 5), torch.randn(2, 4, 5))
    with pytest.raises(
        ValueError, match=r"dense_features must be \[B, D\] = \[2, 5\], got \(2, 6\)"
    ):
        arch(torch.randn(2, 6), torch.randn(2, 3, 5))
