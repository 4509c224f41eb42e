"""Benchmark cases of linear_norm and grouped_linear_norm: shapes, recipes, inputs, the
work the op must do, and the variants to time. The baseline ("eager") is what a user
writes today in the case's own precision, on the same tensors as the op: F.linear +
F.layer_norm in the inputs' dtype (fp32 for the fp32 recipe, bf16 for the bf16 and FP8
recipes); beside it torch.compile of the same,
torch._scaled_mm row-wise + a separate norm, torchao's Float8Linear + norm, and, for the
grouped op, a Python loop over groups of linear_norm."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recperf import dispatch
from recperf.benchmarks.roofline import Work
from recperf.ops.fp8_ref import quantize_fp8_ref
from recperf.ops.linear_norm import grouped_linear_norm, linear_norm
from recperf.ops.linear_norm_ref import linear_norm_ref
from recperf.ops.recipes import recipe as recipe_of

DIRECTIONS = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class LinearNormCase:
    M: int
    K: int
    N: int
    recipe: str
    dtype: torch.dtype  # of x, weight, residual and the norm parameters
    direction: str
    groups: int = 0  # 0: linear_norm; G > 0: grouped_linear_norm with G groups
    with_compile: bool = True
    # An FP8 recipe on a device without FP8 matrix units (the CPU): the op emulates it, so
    # its rows are reported but are no speed claim; the name says so.
    emulated: bool = False

    # --- naming -------------------------------------------------------------------------
    @property
    def op(self) -> str:
        return "grouped_linear_norm" if self.groups else "linear_norm"

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def shape(self) -> str:
        g = f"G={self.groups} " if self.groups else ""
        return f"{g}M={self.M} K={self.K} N={self.N}"

    @property
    def name(self) -> str:
        name = f"{self.op} {self.recipe} {self.direction} {self.dtype_name} {self.shape}"
        return name + (" [emulation, not a speed claim]" if self.emulated else "")

    @property
    def slug(self) -> str:
        g = f"{self.groups}x" if self.groups else ""
        direction = self.direction.replace("+", "_")
        return (
            f"{self.op}-{self.recipe}-{direction}-{self.dtype_name}-{g}{self.M}x{self.K}x{self.N}"
        )

    def with_dtype(self, dtype: torch.dtype) -> LinearNormCase:
        return dataclasses.replace(self, dtype=dtype)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype whose matrix throughput bounds this case (for the roofline)."""
        kind = recipe_of(self.recipe).forward.kind
        return {"fp8": torch.float8_e4m3fn, "bf16": torch.bfloat16}.get(kind, torch.float32)

    @property
    def baseline_compute_dtype(self) -> torch.dtype:
        """The eager baseline's: it runs in the inputs' dtype (runner: its rows' floor)."""
        return self.dtype

    # --- work -----------------------------------------------------------------------------
    def work(self) -> Work:
        G = max(self.groups, 1)
        M, K, N = self.M, self.K, self.N
        s = torch.finfo(self.dtype).bits // 8
        params = (N * K + 3 * N) * s
        fwd = Work(G * ((M * K + 2 * M * N) * s + params), G * 2.0 * M * N * K)
        # backward: read grad, x, W (and residual for the recompute-free floor: no);
        # write dx, dW, d(bias, norm params), dresidual.
        bwd = Work(G * ((2 * M * N + 2 * M * K) * s + 2 * params), G * 4.0 * M * N * K)
        return fwd if self.direction == "fwd" else fwd + bwd

    # --- inputs -----------------------------------------------------------------------------
    def make_inputs(self, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(seed)
        lead = (self.groups,) if self.groups else ()

        def randn(*size, scale=1.0):
            return (torch.randn(*lead, *size, generator=g) * scale).to(
                device=device, dtype=self.dtype
            )

        t = {
            "x": randn(self.M, self.K),
            "weight": randn(self.N, self.K, scale=self.K**-0.5),
            "bias": randn(self.N, scale=0.1),
            "residual": randn(self.M, self.N),
            "norm_weight": 1 + randn(self.N, scale=0.1),
            "norm_bias": randn(self.N, scale=0.1),
        }
        if self.direction == "fwd+bwd":
            for v in t.values():
                v.requires_grad_(True)
            t["grad"] = randn(self.M, self.N)
        return t

    # --- what to time -------------------------------------------------------------------------
    def op_fn(self, backend: str) -> Callable[[dict], torch.Tensor]:
        op = grouped_linear_norm if self.groups else linear_norm
        return lambda t: op(
            t["x"], t["weight"], t["bias"], t["residual"], t["norm_weight"], t["norm_bias"],
            "layer", 1e-5, self.recipe, backend,
        )  # fmt: skip

    def eager_fn(self) -> Callable[[dict], torch.Tensor]:
        """F.linear + F.layer_norm in the inputs' dtype (batched over groups with bmm)."""

        def eager(t):
            x, w, b, r = t["x"], t["weight"], t["bias"], t["residual"]
            nw, nb = t["norm_weight"], t["norm_bias"]
            if self.groups:
                z = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)) + r
                return F.layer_norm(z, (self.N,), None, None, 1e-5) * nw.unsqueeze(
                    1
                ) + nb.unsqueeze(1)
            return F.layer_norm(F.linear(x, w, b) + r, (self.N,), nw, nb, 1e-5)

        return eager

    def extra_variants(self, device: torch.device) -> dict[str, Callable[[dict], torch.Tensor]]:
        out = {}
        if self.groups:
            # the loop a grouped op replaces: one linear_norm per group
            out["loop over groups"] = lambda t: torch.stack([
                linear_norm(t["x"][g], t["weight"][g], t["bias"][g], t["residual"][g],
                            t["norm_weight"][g], t["norm_bias"][g], "layer", 1e-5, self.recipe)
                for g in range(self.groups)
            ])  # fmt: skip
            return out
        if device.type == "cuda" and self.direction == "fwd" and self.recipe == "fp8_rowwise":
            out["scaled_mm+norm"] = self._scaled_mm_then_norm
        if device.type == "cuda" and self.recipe in _TORCHAO_RECIPES and _has_torchao():
            out["torchao+norm"] = self._torchao_then_norm()
        return out

    def _scaled_mm_then_norm(self, t):
        qx, sx = quantize_fp8_ref(t["x"], "row")
        qw, sw = quantize_fp8_ref(t["weight"], "row")
        z = torch._scaled_mm(
            qx, qw.t(), sx, sw.t(), bias=t["bias"].bfloat16(), out_dtype=torch.bfloat16
        )
        return F.layer_norm(z + t["residual"].bfloat16(), (self.N,), t["norm_weight"].bfloat16(),
                            t["norm_bias"].bfloat16(), 1e-5)  # fmt: skip

    def _torchao_then_norm(self):
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        holder = {}

        def run(t):
            if id(t["weight"]) not in holder:  # one module per input set, made once
                linear = torch.nn.Linear(self.K, self.N, device=t["x"].device, dtype=torch.bfloat16)
                with torch.no_grad():
                    linear.weight.copy_(t["weight"])
                    linear.bias.copy_(t["bias"])
                config = Float8LinearConfig.from_recipe_name(_TORCHAO_RECIPES[self.recipe])
                holder[id(t["weight"])] = convert_to_float8_training(linear, config=config)
            z = holder[id(t["weight"])](t["x"].bfloat16()) + t["residual"].bfloat16()
            return F.layer_norm(
                z, (self.N,), t["norm_weight"].bfloat16(), t["norm_bias"].bfloat16(), 1e-5
            )

        return run

    def reference(self, inputs: dict) -> torch.Tensor:
        args = [
            inputs[k].detach().double()
            for k in ("x", "weight", "bias", "residual", "norm_weight", "norm_bias")
        ]
        return linear_norm_ref(*args, "layer", 1e-5, "fp32")

    def backends(self, device: torch.device) -> list[str]:
        kernels = [f"{self.op}_fwd"] + ([f"{self.op}_bwd"] if self.direction != "fwd" else [])
        shape = {"M": self.M, "K": self.K, "N": self.N, "G": self.groups}
        options = {"recipe": self.recipe, "norm": "layer", "weight_dtype": self.dtype}
        inputs = dispatch.Inputs(device, self.dtype, shape, options)
        names = []
        for backend in dispatch.BACKENDS:
            if backend == "triton" and device.type == "cpu":
                continue  # the interpreter is never benchmarked
            impls = [dispatch.implementations(k).get(backend) for k in kernels]
            if all(i is not None and not i.not_supported_reasons(inputs) for i in impls):
                names.append(backend)
        return names


_TORCHAO_RECIPES = {
    "fp8_tensorwise": "tensorwise",
    "fp8_rowwise": "rowwise",
    "fp8_rowwise_gw_hp": "rowwise_with_gw_hp",
}


def _has_torchao() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


GPU_MS = (2048, 8192, 32768)
GPU_KN = (256, 512, 1024, 2048)
TARGET = (8192, 1024, 1024)  # the reference shape


def default_cases(device: torch.device, quick: bool = False) -> list[LinearNormCase]:
    if quick:
        return [
            LinearNormCase(16, 32, 24, r, torch.float32, d)
            for r in ("fp32", "fp8_rowwise")
            for d in DIRECTIONS
        ] + [LinearNormCase(8, 32, 16, "fp8_rowwise", torch.float32, "fwd", groups=3)]
    if device.type == "cpu":
        # Each recipe on the tensors of a model in its precision (fp32 for fp32, bf16 for
        # the rest); FP8 has no matrix units here, so its rows are emulations.
        def cpu_case(recipe: str, *shape: int, **kw) -> LinearNormCase:
            dtype = torch.float32 if recipe == "fp32" else torch.bfloat16
            return LinearNormCase(*shape, recipe, dtype, emulated=recipe_of(recipe).uses_fp8, **kw)

        cases = [
            cpu_case(r, 2048, kn, kn, direction=d)
            for kn in (256, 512)
            for r in ("fp32", "bf16", "fp8_rowwise")
            for d in DIRECTIONS
        ]
        cases += [
            cpu_case(r, 512, 256, 256, direction="fwd", groups=8) for r in ("bf16", "fp8_rowwise")
        ]
        return cases
    bf16 = torch.bfloat16
    cases = [
        LinearNormCase(M, kn, kn, r, bf16, "fwd", with_compile=(M, kn, kn) == TARGET)
        for M in GPU_MS
        for kn in GPU_KN
        for r in ("bf16", "fp8_rowwise")
    ]
    cases += [
        LinearNormCase(*TARGET, r, bf16, d)
        for r in ("fp8_tensorwise", "fp8_rowwise_gw_hp")
        for d in DIRECTIONS
    ]
    cases += [LinearNormCase(*TARGET, r, bf16, "fwd+bwd") for r in ("bf16", "fp8_rowwise")]
    cases += [
        LinearNormCase(4096, 512, 512, r, bf16, d, groups=8, with_compile=False)
        for r in ("bf16", "fp8_rowwise")
        for d in DIRECTIONS
    ]
    return cases
