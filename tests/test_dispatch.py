"""The dispatcher: default priority, forcing (argument > context > environment), the
one-time fallback warning, and the error that lists every backend and its reason."""

from __future__ import annotations

import warnings

import pytest
import torch

import recperf
from recperf import dispatch, validated

CPU_F32 = dispatch.Inputs(torch.device("cpu"), torch.float32, {"n": 4})


def impl(kernel, backend, devices=("cpu",), dtypes=(torch.float32,), missing=None):
    return dispatch.Implementation(
        kernel=kernel,
        backend=backend,
        fn=lambda *a: backend,
        devices=frozenset(devices),
        dtypes=frozenset(dtypes),
        available=lambda: missing,
    )


@pytest.fixture
def toy(monkeypatch):
    """A kernel of our own with a cpp and a torch implementation."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    kernel = "toy_kernel"
    monkeypatch.setitem(
        dispatch._registry,
        kernel,
        {"cpp": impl(kernel, "cpp"), "torch": impl(kernel, "torch", ("cpu", "cuda"))},
    )
    return kernel


def test_default_priority_on_cpu_prefers_cpp(toy):
    assert dispatch.choose(toy, CPU_F32).backend == "cpp"


def test_default_skips_a_backend_that_declines(toy):
    f64 = dispatch.Inputs(torch.device("cpu"), torch.float64, {})
    with pytest.raises(ValueError) as err:
        dispatch.choose(toy, f64)
    message = str(err.value)
    assert "no backend can run" in message
    assert "cpp: dtype torch.float64 not in ['float32']" in message
    assert "torch: dtype torch.float64" in message


def test_forcing_order_argument_context_environment(toy, monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert dispatch.choose(toy, CPU_F32).backend == "torch"
    with recperf.use_backend("cpp"):
        assert dispatch.choose(toy, CPU_F32).backend == "cpp"
        assert dispatch.choose(toy, CPU_F32, "torch").backend == "torch"
    assert dispatch.choose(toy, CPU_F32, "cpp").backend == "cpp"


def test_forced_backend_without_the_kernel_warns_once_and_uses_the_default(toy, monkeypatch):
    monkeypatch.setattr(dispatch, "_warned", set())
    with pytest.warns(UserWarning, match="toy_kernel has no 'triton' implementation"):
        assert dispatch.choose(toy, CPU_F32, "triton").backend == "cpp"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.choose(toy, CPU_F32, "triton").backend == "cpp"


def test_forced_backend_that_cannot_run_is_an_error(toy, monkeypatch):
    monkeypatch.setitem(
        dispatch._registry[toy], "cuda", impl(toy, "cuda", ("cuda",), missing="not built")
    )
    with pytest.raises(ValueError, match=r"backend 'cuda' was forced.*not built.*device 'cpu'"):
        dispatch.choose(toy, CPU_F32, "cuda")


def test_unknown_backend_names_are_rejected(toy, monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        dispatch.choose(toy, CPU_F32, "fast")
    with pytest.raises(ValueError, match="use_backend"), recperf.use_backend("fast"):
        pass
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="RECPERF_BACKEND must be one of"):
        dispatch.choose(toy, CPU_F32)


def test_cuda_default_is_torch_until_a_backend_is_validated(toy, monkeypatch):
    assert dispatch.default_priority(toy, "cuda") == ("torch",)
    monkeypatch.setitem(validated.VALIDATED, toy, [("triton", "bench/results/x.json")])
    assert dispatch.default_priority(toy, "cuda") == ("triton", "torch")
    cuda = dispatch.Inputs(torch.device("cuda"), torch.float32, {})
    # triton is validated but not registered for this toy kernel: torch serves.
    assert dispatch.choose(toy, cuda).backend == "torch"


def test_public_op_honours_the_backend_argument(monkeypatch):
    calls = []
    real = dispatch.implementations("fm_projected_fwd")["torch"]
    spy = dispatch.Implementation(
        **{**real.__dict__, "fn": lambda *a: calls.append("torch") or real.fn(*a)}
    )
    monkeypatch.setitem(dispatch._registry["fm_projected_fwd"], "torch", spy)
    x, proj = torch.randn(2, 3, 4), torch.randn(3, 2)
    recperf.fm_projected(x, proj)
    assert calls == []  # the default on CPU is cpp
    recperf.fm_projected(x, proj, backend="torch")
    with recperf.use_backend("torch"):
        recperf.fm_projected(x, proj)
    assert calls == ["torch", "torch"]


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel must be one of"):
        dispatch.implementations("no_such_kernel")
