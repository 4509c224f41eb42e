"""The roofline arithmetic of every op's cases against hand counts."""

import pytest
import torch

from recperf.benchmarks.fm_cases import FMCase, FMShape
from recperf.benchmarks.linear_norm_cases import LinearNormCase
from recperf.benchmarks.roofline import DATASHEETS, Ceilings, Work

F32 = torch.float32


@pytest.mark.parametrize(
    "case,bytes_,flops",
    [
        # x 2*4*8 floats, 6 pairs per example out; 6 dots of 8 MACs per example
        (FMCase("fm_pairwise", FMShape(2, 4, 8, 1), F32, "fwd"), 4 * (64 + 12), 2 * 2 * 6 * 8),
        # x, out 2*4*3, proj 4*3; x^T P and x T: 2 GEMMs of n*d*k MACs per example (never
        # x x^T, though it would be fewer here)
        (
            FMCase("fm_projected", FMShape(2, 4, 8, 3), F32, "fwd"),
            4 * (64 + 24 + 12),
            4 * 2 * 4 * 8 * 3,
        ),
        # the norm's forward counts the fewer of x (x^T P) and (x x^T) P: here x (x^T P),
        # 2*8*4*1 = 64 MACs against 8*9/2 dots of 4 plus 8*8*1 = 208; x, out, 3 params
        (
            FMCase("fm_projected_norm", FMShape(2, 8, 4, 1), F32, "fwd"),
            4 * (64 + 16 + 3 * 8),
            2 * 2 * 2 * 8 * 4 * 1,
        ),
        # here (x x^T) P, 4*5/2 dots of 8 plus 4*4*3 = 128 MACs against 2*4*8*3 = 192;
        # backward: read grad and x, write grad_x; params twice; 4 GEMMs of n*d*k MACs
        (
            FMCase("fm_projected_norm", FMShape(2, 4, 8, 3), F32, "fwd+bwd"),
            4 * (64 + 24 + 36) + 4 * (24 + 128 + 72),
            2 * 2 * (10 * 8 + 4 * 4 * 3) + 8 * 2 * 4 * 8 * 3,
        ),
        # x [4, 8], y and residual [4, 6], weight [6, 8] + bias and norm params 3 x [6]
        (LinearNormCase(4, 8, 6, "bf16", F32, "fwd"), 4 * (32 + 48 + 48 + 18), 2 * 4 * 6 * 8),
        # bf16 inputs halve the bytes; two groups double everything; backward: 2 more GEMMs
        (
            LinearNormCase(4, 8, 6, "fp8_rowwise", torch.bfloat16, "fwd+bwd", groups=2),
            2 * 2 * ((32 + 48 + 48 + 18) + (48 + 64 + 2 * 66)),
            2 * 6.0 * 4 * 6 * 8,
        ),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_work_matches_hand_counts(case, bytes_, flops):
    work = case.work()
    assert work.bytes == bytes_ and work.flops == flops


def test_floor_is_the_larger_of_bytes_and_flops():
    c = Ceilings(
        "toy", bandwidth=100.0, flops_fp32=10.0, flops_16bit=40.0, source="test", flops_fp8=80.0
    )
    assert c.floor_seconds(Work(1000, 50), torch.float32) == 10.0  # memory bound
    assert c.floor_seconds(Work(100, 500), torch.float32) == 50.0  # compute bound
    assert c.floor_seconds(Work(100, 500), torch.bfloat16) == 12.5
    assert c.floor_seconds(Work(100, 500), torch.float8_e4m3fn) == 6.25
    no_fp8 = Ceilings("cpu", 100.0, 10.0, 40.0, "test")
    assert no_fp8.peak(torch.float8_e4m3fn) == 10.0  # emulated FP8 runs at the fp32 rate


def test_datasheets_name_their_source():
    for ceilings in DATASHEETS.values():
        assert ceilings.source == "datasheet"
        assert ceilings.flops_fp8 == pytest.approx(2 * ceilings.flops_16bit, rel=0.01)
