"""Roofline floors: the fewest bytes and FLOPs an op must move and do, and a device's
ceilings, so that each benchmark row can say how far it is from the floor.

Floor time = max(bytes / bandwidth, flops / peak). Bytes count each input read once and
each output written once; FLOPs count the algorithm's multiply-adds (2 per MAC), not
what an implementation may recompute.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Work:
    bytes: float
    flops: float

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.flops + other.flops)


@dataclass(frozen=True)
class Ceilings:
    """Memory bandwidth (bytes/s) and matrix throughput (FLOP/s) of a device."""

    name: str
    bandwidth: float
    flops_fp32: float
    flops_16bit: float
    source: str
    flops_fp8: float = 0.0  # 0: no FP8 matrix units (the fp32 rate bounds emulation)

    def peak(self, dtype: torch.dtype) -> float:
        if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            return self.flops_fp8 or self.flops_fp32
        return self.flops_16bit if dtype in (torch.bfloat16, torch.float16) else self.flops_fp32

    def floor_seconds(self, work: Work, dtype: torch.dtype) -> float:
        return max(work.bytes / self.bandwidth, work.flops / self.peak(dtype))

    def as_dict(self) -> dict:
        return asdict(self)


# Datasheet figures (dense, no sparsity) for the GPUs we target; fp32 through the FMA
# pipes since the fp32 kernels run in IEEE precision, not tf32. Sources: NVIDIA H100 and
# H200 datasheets (SXM). They are ceilings, not measurements: the GPU benchmark measures
# its own (roofline.measure_ceilings) and records them in its results file.
DATASHEETS = {
    "h100": Ceilings("NVIDIA H100 SXM (datasheet)", 3.35e12, 67e12, 989e12, "datasheet", 1979e12),
    "h200": Ceilings("NVIDIA H200 SXM (datasheet)", 4.8e12, 67e12, 989e12, "datasheet", 1979e12),
}


def _median_seconds(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _copy_bandwidth(numel: int, device: torch.device, sync) -> float:
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    return 2 * numel * 4 / _median_seconds(lambda: dst.copy_(src), 5, sync)  # read + write


def _fp8_flops(size: int, device: torch.device, sync) -> float:
    """torch._scaled_mm's throughput, 0 where the GPU or this torch has no FP8 GEMM."""
    try:
        a = torch.randn(size, size, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(size, size, device=device).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        run = lambda: torch._scaled_mm(a, b, one, one, out_dtype=torch.bfloat16)  # noqa: E731
        return 2 * size**3 / _median_seconds(run, 3, sync)
    except (RuntimeError, AttributeError):
        return 0.0


def measure_ceilings(device: torch.device, quick: bool = False) -> Ceilings:
    """Measures this device's copy bandwidth and matmul throughput (a few seconds;
    ``quick`` uses small sizes, for smoke tests)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    numel = (1 << 30 if device.type == "cuda" else 1 << 27) // 4  # 1 GiB / 128 MiB
    if quick:
        numel //= 64
    bandwidth = _copy_bandwidth(numel, device, sync)
    size = 8192 if device.type == "cuda" else 1024
    if quick:
        size //= 4
    flops = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        flops[dtype] = 2 * size**3 / _median_seconds(lambda a=a, b=b: a @ b, 3, sync)
    fp8 = _fp8_flops(size, device, sync) if device.type == "cuda" else 0.0
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    return Ceilings(
        name=name,
        bandwidth=bandwidth,
        flops_fp32=flops[torch.float32],
        flops_16bit=flops[torch.bfloat16],
        flops_fp8=fp8,
        source="measured in this run (copy, matmul)",
    )
