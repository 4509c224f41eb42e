"""The backend registry and dispatcher.

An op's kernel (say ``fm_projected_fwd``) has several implementations, one per backend:
``torch`` (the composite reference), ``cpp`` (csrc CPU), ``triton`` and ``cuda``. Each
declares what it supports and says why not. The registered device kernel of every public
op asks :func:`choose` which one to run:

1. a backend forced by the op's ``backend`` argument, else by :func:`use_backend`, else by
   ``RECPERF_BACKEND``; a forced backend that lacks this kernel falls back to the default
   with a one-time warning, one that has it but cannot run these inputs is an error;
2. otherwise the first backend of the device's static default priority that supports the
   inputs. On a GPU a backend joins that priority only once a committed device run has
   validated it (:mod:`recperf.validated`).

When nothing fits, one ``ValueError`` lists every backend and why it declined.

On the CPU the hot ops (FM, linear_norm) have a compiled kernel in front of this
dispatcher (csrc/ops/fast_path.h): it runs the cpp kernel itself when this dispatcher is
certain to pick it, and calls this dispatcher for everything else (:func:`device_kernel`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

BACKENDS = ("torch", "cpp", "triton", "cuda", "scaled_mm", "torchao", "te")
"""Every backend name: recperf's own four, then third-party comparisons (torch._scaled_mm,
torchao's float8 training, Transformer Engine), each used only where importable."""

CPU_PRIORITY = ("cpp", "torch")
"""Default order on CPU tensors; the Triton interpreter is for tests, never a default."""

ENV_VAR = "RECPERF_BACKEND"

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "recperf_backend", default=None
)
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Inputs:
    """What a backend needs to know to accept or decline a call."""

    device: torch.device
    dtype: torch.dtype
    shape: dict[str, int] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)  # recipe, norm, ...


@dataclass(frozen=True)
class Implementation:
    """One backend's implementation of one kernel.

    ``available`` returns why the backend cannot run at all here (not built, not
    importable), or None. ``limits`` returns why these particular inputs are out of
    range, or None.
    """

    kernel: str
    backend: str
    fn: Callable
    devices: frozenset[str]
    dtypes: frozenset[torch.dtype]
    available: Callable[[], str | None] = lambda: None
    limits: Callable[[Inputs], str | None] = lambda inputs: None

    def not_supported_reasons(self, inputs: Inputs, check_available: bool = True) -> list[str]:
        """Why these inputs cannot run here; ``check_available=False`` leaves out whether
        this machine's build has the backend (LoKA plans for another device's build)."""
        reasons = []
        missing = self.available() if check_available else None
        if missing:
            reasons.append(missing)
        if inputs.device.type not in self.devices:
            reasons.append(f"device {inputs.device.type!r} not in {sorted(self.devices)}")
        if inputs.dtype not in self.dtypes:
            names = sorted(str(d).removeprefix("torch.") for d in self.dtypes)
            reasons.append(f"dtype {inputs.dtype} not in {names}")
        if not reasons:
            limit = self.limits(inputs)
            if limit:
                reasons.append(limit)
        return reasons


_registry: dict[str, dict[str, Implementation]] = {}


def register(impl: Implementation) -> Implementation:
    if impl.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {impl.backend!r}")
    _registry.setdefault(impl.kernel, {})[impl.backend] = impl
    return impl


def implementations(kernel: str) -> dict[str, Implementation]:
    """The registered implementations of a kernel, by backend name."""
    if kernel not in _registry:
        raise ValueError(f"kernel must be one of {sorted(_registry)}, got {kernel!r}")
    return dict(_registry[kernel])


def kernels() -> list[str]:
    return sorted(_registry)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force ``name`` for every op called inside the block (the ``backend`` argument of
    an op still wins)."""
    _check_name(name, "use_backend(name)")
    # The compiled CPU fast path (csrc/ops/fast_path.h) steps aside while this is open.
    counted = name != "cpp"
    if counted:
        torch.ops.recperf_kernels.forcing_blocks(1)
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)
        if counted:
            torch.ops.recperf_kernels.forcing_blocks(-1)


def forced_backend(requested: str = "auto") -> str:
    """The backend in force for a call: the argument, the context, the environment."""
    _check_name(requested, "backend", allow_auto=True)
    if requested != "auto":
        return requested
    ctx = _forced.get()
    if ctx is not None:
        return ctx
    env = os.environ.get(ENV_VAR, "auto") or "auto"
    _check_name(env, ENV_VAR, allow_auto=True)
    return env


def default_priority(kernel: str, device_type: str) -> tuple[str, ...]:
    """The static default order of backends for a kernel on a device type."""
    if device_type == "cpu":
        return CPU_PRIORITY
    if device_type == "cuda":
        from recperf.validated import validated_backends

        return (*validated_backends(kernel), "torch")
    return ("torch",)


def choose(kernel: str, inputs: Inputs, requested: str = "auto") -> Implementation:
    """The implementation of ``kernel`` to run on ``inputs`` (see the module docstring)."""
    impls = implementations(kernel)
    name = forced_backend(requested)
    if name != "auto":
        impl = impls.get(name)
        if impl is not None:
            reasons = impl.not_supported_reasons(inputs)
            if reasons:
                raise ValueError(
                    f"{kernel}: backend {name!r} was forced but cannot run these inputs: "
                    + "; ".join(reasons)
                )
            return impl
        if (kernel, name) not in _warned:
            _warned.add((kernel, name))
            warnings.warn(
                f"{kernel} has no {name!r} implementation; using the default backend",
                stacklevel=3,
            )
    declined = {}
    for candidate in default_priority(kernel, inputs.device.type):
        impl = impls.get(candidate)
        if impl is None:
            continue
        reasons = impl.not_supported_reasons(inputs)
        if not reasons:
            return impl
        declined[candidate] = reasons
    for other, impl in impls.items():
        if other not in declined:
            declined[other] = impl.not_supported_reasons(inputs) or [
                "not in the default priority for this device"
            ]
    detail = "; ".join(f"{b}: {', '.join(r)}" for b, r in sorted(declined.items()))
    raise ValueError(f"{kernel}: no backend can run these inputs ({detail})")


def device_kernel(op: str, fast_cpu_path: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` (checks, then :func:`choose`) becomes the CPU and CUDA kernel of
    the public op ``recperf::<op>``. With ``fast_cpu_path`` the op's CPU kernel is
    compiled (csrc/ops/fast_path.h) and ``fn`` becomes, on the CPU, the kernel of the op's
    ``recperf_dispatch`` twin, which the compiled kernel calls when its fast path does
    not apply."""

    def register(fn: Callable) -> Callable:
        if fast_cpu_path:
            torch.library.register_kernel(f"recperf::{op}", "cuda", fn)
            torch.library.register_kernel(f"recperf_dispatch::{op}", "cpu", fn)
        else:
            torch.library.register_kernel(f"recperf::{op}", ("cpu", "cuda"), fn)
        return fn

    return register


def _check_name(name: object, what: str, allow_auto: bool = False) -> None:
    allowed = (*BACKENDS, "auto") if allow_auto else BACKENDS
    if name not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {name!r}")
