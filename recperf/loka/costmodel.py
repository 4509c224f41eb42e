"""A roofline cost model of a target GPU (``--target h100|h200``), for planning a GPU run
from a machine without one.

Each direction of a layer (forward; dgrad, with the backward's recompute of z and the norm
backward; wgrad) is the list of kernels its backend launches. A kernel takes
max(flops / peak, bytes / bandwidth) + a fixed launch overhead, with the datasheet ceilings
of recperf.benchmarks.roofline and the peak of the precision it really computes in (an FP8
GEMM that the backend emulates with fp32 arithmetic gets the fp32 peak). The structure
per backend follows its code:

- triton: a quantize pass per FP8 operand, then one GEMM whose epilogue applies the norm
  (forward and backward) when N <= TRITON_FUSED_MAX_N, else a GEMM writing fp32 z and a
  row-norm kernel;
- cuda: quantize passes, torch._scaled_mm where cuBLASLt takes the operands (both e4m3 for
  row-wise scales, 2-D, contracted and output dims multiples of 16: see
  recperf.ops.linear_norm_composite._scaled_mm_fits; otherwise an fp32 GEMM of upcast
  codes), and a separate add_norm kernel;
- torch: the reference, elementwise op by elementwise op (TORCH_PASSES passes of fp32
  data per quantize and per norm), FP8 GEMMs in fp32;
- torchao: tensor-wise casts (an amax pass and a cast pass per operand), _scaled_mm, and
  the norm in torch.

Activations and weights are ``act_bytes`` wide (2: the target runs the model in bf16).
The numbers are a model, good for ranking candidates, not for promising a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from recperf.benchmarks.roofline import DATASHEETS, Ceilings
from recperf.loka.candidates import Candidate
from recperf.loka.sites import Site
from recperf.ops.recipes import E4M3, E5M2, GemmPrecision, recipe

# Largest N the Triton kernels normalize in the GEMM epilogue (recperf/kernels/
# linear_norm.py FUSED_MAX_N; tests/loka checks that the two agree).
TRITON_FUSED_MAX_N = 256
# Elementwise passes (and launches) of the torch reference per quantize / norm / norm bwd.
TORCH_PASSES = {"quantize": 7, "norm": 7, "norm_bwd": 12}
DIRECTIONS = ("forward", "dgrad", "wgrad")


@dataclass(frozen=True)
class _Kernel:
    flops: float
    bytes: float
    peak: str  # "fp8", "bf16" or "fp32"


@dataclass(frozen=True)
class CostModel:
    ceilings: Ceilings
    launch_s: float = 4e-6
    act_bytes: int = 2

    @classmethod
    def for_target(cls, name: str, launch_s: float = 4e-6) -> CostModel:
        if name not in DATASHEETS:
            raise ValueError(f"target must be one of {tuple(DATASHEETS)}, got {name!r}")
        return cls(DATASHEETS[name], launch_s)

    @property
    def description(self) -> str:
        return (
            f"roofline cost model of {self.ceilings.name}: max(flops / peak, bytes / "
            f"{self.ceilings.bandwidth / 1e12:.2f} TB/s) + {self.launch_s * 1e6:g} us per launch"
        )

    def _seconds(self, k: _Kernel) -> float:
        peak = {
            "fp8": self.ceilings.flops_fp8 or self.ceilings.flops_fp32,
            "bf16": self.ceilings.flops_16bit,
            "fp32": self.ceilings.flops_fp32,
        }[k.peak]
        return max(k.flops / peak, k.bytes / self.ceilings.bandwidth) + self.launch_s

    def times(self, site: Site, rows: int, candidate: Candidate) -> dict[str, float]:
        """Seconds of each direction (forward, dgrad, wgrad) of one training step."""
        kernels = _Layer(site, rows, candidate, self.act_bytes).kernels()
        return {d: sum(self._seconds(k) for k in kernels[d]) for d in DIRECTIONS}


class _Layer:
    """The kernels each backend launches for one layer and recipe."""

    def __init__(self, site: Site, rows: int, candidate: Candidate, act_bytes: int) -> None:
        self.G = max(site.shape.groups, 1)
        self.grouped = bool(site.shape.groups)
        self.M, self.K, self.N = max(rows, 1), site.shape.in_features, site.shape.out_features
        self.norm = site.norm
        self.backend = candidate.backend
        self.recipe = recipe(candidate.recipe)
        self.a = act_bytes

    # ---- building blocks ---------------------------------------------------------------
    def _pass(self, elems: float, read: int, write: int, launches: int = 1) -> list[_Kernel]:
        """Elementwise pass(es) over ``elems`` elements of each of the G groups."""
        per = _Kernel(0.0, self.G * elems * (read + write), "fp32")
        return [per] * launches

    def _quantize(self, elems: float, read: int, granularity: str) -> list[_Kernel]:
        if self.backend == "torch":
            return self._pass(elems, 4, 4, TORCH_PASSES["quantize"])
        if self.backend == "torchao" or granularity == "tensor":
            return self._pass(elems, read, 0) + self._pass(elems, read, 1)  # amax, cast
        return self._pass(elems, read, 1)  # one row-wise pass

    def _gemm(
        self, m: int, n: int, k: int, p: GemmPrecision, a_read: int, b_read: int, out: int
    ) -> list[_Kernel]:
        """a [m, k] . b [n, k]^T, with the operands' quantize or cast passes."""
        flops = self.G * 2.0 * m * n * k
        if p.kind != "fp8":
            kind = "bf16" if p.kind == "bf16" else "fp32"
            size = 2 if p.kind == "bf16" else 4
            casts = []
            if self.backend != "triton":  # the others cast in a pass of their own
                casts += self._pass(m * k, a_read, size) if a_read != size else []
                casts += self._pass(n * k, b_read, size) if b_read != size else []
            main = _Kernel(flops, self.G * ((m + n) * k * size + m * n * out), kind)
            return [*casts, main]
        quant = self._quantize(m * k, a_read, p.granularity)
        quant += self._quantize(n * k, b_read, p.granularity)
        if self._fp8_in_fp32(m, n, k, p):  # codes upcast to fp32, an fp32 GEMM
            upcast = self._pass((m + n) * k, 1, 4)
            return [*quant, *upcast, _Kernel(flops, self.G * ((m + n) * k * 4 + m * n * 4), "fp32")]
        return [*quant, _Kernel(flops, self.G * ((m + n) * k + m * n * out), "fp8")]

    def _fp8_in_fp32(self, m: int, n: int, k: int, p: GemmPrecision) -> bool:
        if self.backend == "torch":
            return True
        if self.backend != "cuda":
            return False
        fits = (
            not self.grouped
            and k % 16 == 0
            and n % 16 == 0
            and not (p.a_dtype == E5M2 and p.b_dtype == E5M2)
            and (p.granularity == "tensor" or p.a_dtype == p.b_dtype == E4M3)
        )
        return not fits

    def _norm(self, backward: bool) -> list[_Kernel]:
        """The separate norm kernel(s) of an unfused backend (none when fused)."""
        M, N = self.M, self.N
        if self.backend in ("torch", "torchao"):
            key = "norm_bwd" if backward else "norm"
            passes = TORCH_PASSES[key] if self.norm != "none" else 1  # the bias add
            return self._pass(M * N, 4, 4, passes)
        if self.backend == "triton" and N <= TRITON_FUSED_MAX_N:
            return []
        if self.norm == "none" and self.backend == "triton":
            return []  # the GEMM's STORE epilogue adds the bias
        # read z (fp32) (+ dy), write y (or dz fp32)
        return self._pass(M * N, 4 + (self.a if backward else 0), 4 if backward else self.a)

    # ---- directions --------------------------------------------------------------------
    def kernels(self) -> dict[str, list[_Kernel]]:
        M, K, N, a, r = self.M, self.K, self.N, self.a, self.recipe
        fused = self.backend == "triton" and N <= TRITON_FUSED_MAX_N
        z_bytes = a if fused else 4
        if self.backend == "cuda" and r.forward.kind == "fp8" and r.forward.granularity == "row":
            z_bytes = 2  # cuBLASLt's row-wise FP8 GEMM writes bf16
        forward = self._gemm(M, N, K, r.forward, a, a, z_bytes) + self._norm(False)
        dgrad = []
        if self.norm != "none":  # the backward recomputes z, then the norm backward
            dgrad += self._gemm(M, N, K, r.forward, a, a, 4)  # z, or fused: dz (fp32)
            dgrad += self._norm(True)
        dz_read = 4 if self.norm != "none" else a
        dgrad += self._gemm(M, K, N, r.dgrad, dz_read, a, a)
        wgrad = self._gemm(N, K, M, r.wgrad, dz_read, a, a)
        return {"forward": forward, "dgrad": dgrad, "wgrad": wgrad}
