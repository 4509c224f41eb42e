"""Records the Triton launches of recperf's own launchers as an H100/H200 would see them,
on a machine without a GPU, for tools/check_triton_sources.py.

CPU tensors pose as CUDA ones: Triton's active driver is replaced by one that names an
sm_90a target (132 SMs, an H100 SXM / H200's count, for the launchers' grid and split
choices), so each ``kernel[grid](...)`` runs Triton's own binder (signature, 16-byte
alignment and divisibility specializations, constexprs, num_warps, num_stages) on the real
arguments. Triton's ``jit_cache_hook`` then records the specialization and stops the launch
before any compile or kernel run: the outputs stay uninitialized, which is fine, since
nothing downstream is checked. Nothing here runs a kernel.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

SM90 = ("cuda", 90, 32)  # GPUTarget(backend, arch, warp size)
SM_COUNT = 132  # H100 SXM and H200
KERNEL_MODULES = ("fm", "fp8", "linear_norm", "a2a")


class HopperDriver:
    """The few driver calls JITFunction.run and preload make, answered for device 0 of an
    sm_90a GPU; anything else (loading a binary, launching) is an AttributeError."""

    def __init__(self):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget(*SM90)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target

    def get_active_torch_device(self):
        import torch

        return torch.device("cpu")


def use_hopper_driver() -> None:
    """Make Triton compile for sm_90a (call before any launch or preload)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("TRITON_INTERPRET=1: the launches would run the interpreter")
    from triton.runtime.driver import driver

    driver.set_active(HopperDriver())


@dataclass
class Launch:
    """One distinct specialization of one kernel, and what launched it."""

    module: str  # recperf.kernels.<module>
    kernel: str  # the JITFunction's name in it
    spec: str  # Triton's specialization data (JSON), what JITFunction.preload takes
    num_warps: int
    num_stages: int
    constants: dict
    signature: dict
    origins: list[str] = field(default_factory=list)  # "bench ..." / "test ..." labels


class Recorder:
    """Collects launches, deduplicated on Triton's specialization data."""

    def __init__(self):
        self.launches: dict[str, Launch] = {}
        self.origin = ""

    def hook(self, *, key, repr, fn, compile, is_manual_warmup, already_compiled):
        spec = compile["specialization_data"]
        launch = self.launches.get(spec)
        if launch is None:
            constants = {
                ".".join(map(str, path)) if isinstance(path, tuple) else str(path): value
                for path, value in compile["constants"].items()
            }
            launch = Launch(
                module=fn.module.rsplit(".", 1)[-1],
                kernel=fn.name,
                spec=spec,
                num_warps=compile["num_warps"],
                num_stages=compile["num_stages"],
                constants=constants,
                signature=dict(compile["signature"]),
            )
            self.launches[spec] = launch
        if self.origin and self.origin not in launch.origins:
            launch.origins.append(self.origin)
        return True  # handled: JITFunction.run returns before compiling or launching


@contextlib.contextmanager
def capturing(recorder: Recorder):
    """Within: Triton launches of recperf.kernels are recorded, never run; the triton
    backend takes CPU tensors; each launcher sees an SM count of SM_COUNT."""
    import importlib

    import triton

    from recperf.ops import backends

    use_hopper_driver()
    saved_interpreted = backends.triton_interpreted
    modules = [importlib.import_module(f"recperf.kernels.{m}") for m in KERNEL_MODULES]
    saved_sm = {m: getattr(m, "_sm_count", None) for m in modules}
    backends.triton_interpreted = lambda: True  # dispatch: let the triton backend take CPU
    for m in modules:
        if saved_sm[m] is not None:
            m._sm_count = lambda device: SM_COUNT
    triton.knobs.runtime.jit_cache_hook = recorder.hook
    try:
        yield recorder
    finally:
        triton.knobs.runtime.jit_cache_hook = None
        backends.triton_interpreted = saved_interpreted
        for m, fn in saved_sm.items():
            if fn is not None:
                m._sm_count = fn
