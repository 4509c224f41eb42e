"""Benchmark cases of the FM ops: shapes, inputs, the work they must do, and the variants
to time (every backend that runs the inputs, plus eager and compiled torch baselines)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recperf import dispatch
from recperf.benchmarks.roofline import Work
from recperf.ops import fm_ref
from recperf.ops.fm import fm_pairwise, fm_projected, fm_projected_norm, pair_count

OPS = ("fm_pairwise", "fm_projected", "fm_projected_norm")
DIRECTIONS = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class FMShape:
    B: int
    n: int
    d: int
    k: int

    def __str__(self) -> str:
        return f"B={self.B} n={self.n} d={self.d} k={self.k}"

    @property
    def slug(self) -> str:
        return f"{self.B}x{self.n}x{self.d}x{self.k}"


# The default shapes. "base" is the reference shape; "wukong" the GPU target of
# fm_projected (B=4096, n=128); "large-n" stresses the pairwise triangle.
SHAPES = {
    "base": FMShape(2048, 64, 128, 32),
    "wukong": FMShape(4096, 128, 128, 32),
    "large-n": FMShape(512, 256, 64, 32),
}
CPU_SHAPES = ("base", "large-n")
GPU_SHAPES = ("base", "wukong", "large-n")
QUICK_SHAPE = FMShape(8, 12, 16, 4)


@dataclass(frozen=True)
class FMCase:
    op: str
    shape: FMShape
    dtype: torch.dtype
    direction: str
    with_compile: bool = True  # time a torch.compile baseline too

    @property
    def name(self) -> str:
        return f"{self.op} {self.direction} {self.dtype_name} {self.shape}"

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.dtype

    def with_dtype(self, dtype: torch.dtype) -> FMCase:
        return dataclasses.replace(self, dtype=dtype)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def slug(self) -> str:
        return f"{self.op}-{self.direction.replace('+', '_')}-{self.dtype_name}-{self.shape.slug}"

    # --- work -------------------------------------------------------------------------
    def work(self) -> Work:
        B, n, d, k = self.shape.B, self.shape.n, self.shape.d, self.shape.k
        s = torch.finfo(self.dtype).bits // 8
        x_bytes = B * n * d * s
        if self.op == "fm_pairwise":
            pairs = pair_count(n, False)
            fwd = Work(x_bytes + B * pairs * s, 2.0 * B * pairs * d)
            # grad_x = S . x with S symmetric n x n: read grad and x, write grad_x.
            bwd = Work(B * pairs * s + 2 * x_bytes, 2.0 * B * n * n * d)
        else:
            out_bytes = B * n * k * s
            params = n * k * 4 + (2 * n * k * 4 if self.op == "fm_projected_norm" else 0)
            # forward: F = x (x^T P); fm_projected_norm may take (x x^T) P with the upper
            # triangle of x x^T only, when that does fewer FLOPs (fm_projected never forms
            # x x^T); backward: x^T G, G T^T, P gT^T, x gT.
            fwd_flops = 4.0 * n * d * k
            if self.op == "fm_projected_norm":
                fwd_flops = min(fwd_flops, n * (n + 1) * d + 2.0 * n * n * k)
            fwd = Work(x_bytes + out_bytes + params, B * fwd_flops)
            bwd = Work(out_bytes + 2 * x_bytes + 2 * params, 8.0 * B * n * d * k)
        return fwd if self.direction == "fwd" else fwd + bwd

    # --- inputs -----------------------------------------------------------------------
    def make_inputs(self, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(seed)
        B, n, d, k = self.shape.B, self.shape.n, self.shape.d, self.shape.k

        def randn(*size, scale=1.0):
            t = torch.randn(*size, generator=g) * scale
            return t.to(device=device, dtype=self.dtype)

        train = self.direction == "fwd+bwd"
        inputs = {"x": randn(B, n, d, scale=d**-0.25)}
        if self.op != "fm_pairwise":
            inputs["proj"] = randn(n, k, scale=n**-0.5)
        if self.op == "fm_projected_norm":
            inputs["weight"] = 1.0 + randn(n * k, scale=0.1)
            inputs["bias"] = randn(n * k, scale=0.1)
        if train:
            for t in inputs.values():
                t.requires_grad_(True)
            out_shape = {
                "fm_pairwise": (B, pair_count(n, False)),
                "fm_projected": (B, n, k),
                "fm_projected_norm": (B, n * k),
            }[self.op]
            inputs["grad"] = randn(*out_shape)
        return inputs

    # --- what to time -------------------------------------------------------------------
    def op_fn(self, backend: str) -> Callable[[dict], torch.Tensor]:
        if self.op == "fm_pairwise":
            return lambda t: fm_pairwise(t["x"], False, backend)
        if self.op == "fm_projected":
            return lambda t: fm_projected(t["x"], t["proj"], backend)
        return lambda t: fm_projected_norm(t["x"], t["proj"], t["weight"], t["bias"], 1e-5, backend)

    def eager_fn(self) -> Callable[[dict], torch.Tensor]:
        """The same math in plain torch, in the input dtype (the issue's baseline)."""
        n = self.shape.n
        if self.op == "fm_pairwise":
            i, j = torch.triu_indices(n, n, 1)

            def pairwise(t):
                x = t["x"]
                return torch.bmm(x, x.transpose(1, 2))[:, i.to(x.device), j.to(x.device)]

            return pairwise
        if self.op == "fm_projected":
            return lambda t: torch.bmm(t["x"], t["x"].transpose(1, 2) @ t["proj"])

        def projected_norm(t):
            x = t["x"]
            f = torch.bmm(x, x.transpose(1, 2) @ t["proj"]).flatten(1)
            return F.layer_norm(f, (f.shape[1],), t["weight"], t["bias"], 1e-5)

        return projected_norm

    def reference(self, inputs: dict) -> torch.Tensor:
        """Forward output in float64, to report each variant's error."""
        args = [inputs["x"].detach().double()]
        if self.op == "fm_pairwise":
            return fm_ref.fm_pairwise_ref(*args)
        args.append(inputs["proj"].detach().double())
        if self.op == "fm_projected":
            return fm_ref.fm_projected_ref(*args)
        args += [inputs["weight"].detach().double(), inputs["bias"].detach().double()]
        return fm_ref.fm_projected_norm_ref(*args)

    def backends(self, device: torch.device) -> list[str]:
        """Backends with an implementation that runs these inputs (never the Triton
        interpreter: it is a test vehicle, not a benchmark)."""
        kernels = [f"{self.op}_fwd"] + ([f"{self.op}_bwd"] if self.direction != "fwd" else [])
        shape = {"B": self.shape.B, "n": self.shape.n, "d": self.shape.d, "k": self.shape.k}
        inputs = dispatch.Inputs(device=device, dtype=self.dtype, shape=shape)
        names = []
        for backend in dispatch.BACKENDS:
            if backend == "triton" and device.type == "cpu":
                continue
            impls = [dispatch.implementations(kn).get(backend) for kn in kernels]
            if all(i is not None and not i.not_supported_reasons(inputs) for i in impls):
                names.append(backend)
        return names


def default_cases(device: torch.device, quick: bool = False) -> list[FMCase]:
    if quick:
        shapes = [QUICK_SHAPE]
        dtypes = [torch.float32]
    elif device.type == "cuda":
        shapes = [SHAPES[s] for s in GPU_SHAPES]
        dtypes = [torch.float32, torch.bfloat16]
    else:
        shapes = [SHAPES[s] for s in CPU_SHAPES]
        dtypes = [torch.float32]
    # On the GPU each compiled baseline costs seconds of compilation: only the target
    # shape gets one, so the device check fits its time.
    compile_shapes = [SHAPES["wukong"]] if device.type == "cuda" and not quick else shapes
    return [
        FMCase(op, shape, dtype, direction, shape in compile_shapes)
        for shape in shapes
        for dtype in dtypes
        for op in OPS
        for direction in DIRECTIONS
    ]
