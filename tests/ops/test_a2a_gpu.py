"""permute_chunks on a CUDA device: the triton and cuda backends against the reference,
bit for bit, over awkward chunkings, every kind of dtype, unaligned rows; opcheck.

Skipped without a GPU (the CPU paths are tested in test_a2a.py). Test ids name the backend
and the op, so bench/collect_gpu_results.py can record which backends passed.
"""

from __future__ import annotations

import pytest
import torch

from recperf.ops.a2a import permute_chunks
from recperf.ops.a2a_ref import permute_chunks_ref

pytestmark = pytest.mark.gpu

BACKENDS = ["triton", "cuda"]
DTYPES = [torch.float32, torch.bfloat16, torch.float8_e4m3fn, torch.int64, torch.bool]
# (chunk sizes, trailing): zeros, one row, odd row bytes, 16-byte rows, wide rows, many chunks.
CHUNKINGS = [
    ([3, 0, 2, 0, 0, 5], ()),
    ([1], (3,)),
    ([4, 0, 17, 2], (33,)),
    ([64, 1, 200], (4,)),
    ([2, 5, 3, 6], (2, 1025)),
    ([(7 * i) % 5 for i in range(300)], (16,)),
]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("op", ["permute_chunks"])  # names the op for collect_gpu_results
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_permute_chunks(backend, op, dtype):
    for i, (sizes, trailing) in enumerate(CHUNKINGS):
        g = torch.Generator().manual_seed(i)
        x = (torch.randn(sum(sizes), *trailing, generator=g) * 8).to(dtype).cuda()
        order = torch.randperm(len(sizes), generator=g)
        sizes_t = torch.tensor(sizes, dtype=torch.int64)
        out = permute_chunks(x, sizes_t, order, backend=backend)
        ref = permute_chunks_ref(x.cpu(), sizes_t, order)
        assert torch.equal(bits(out.cpu()), bits(ref)), f"{sizes[:8]} {trailing}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_permute_chunks_unaligned_and_device_metadata(backend):
    base = torch.randint(0, 255, (50, 23), dtype=torch.uint8, device="cuda")
    x = base[1:, 1:22]  # odd row bytes, unaligned start, non-contiguous
    sizes = torch.tensor([10, 0, 19, 20], dtype=torch.int64, device="cuda")
    order = torch.tensor([3, 1, 0, 2], device="cuda")
    out = permute_chunks(x, sizes, order, backend=backend)
    assert torch.equal(out.cpu(), permute_chunks_ref(x.cpu(), sizes.cpu(), order.cpu()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_opcheck(backend):
    x = torch.randn(6, 4, device="cuda", requires_grad=True)
    sizes = torch.tensor([2, 0, 3, 1], dtype=torch.int64)
    order = torch.tensor([3, 1, 0, 2])
    torch.library.opcheck(torch.ops.recperf.permute_chunks.default, (x, sizes, order, backend))
