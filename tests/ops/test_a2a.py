"""permute_chunks: every backend that runs here against the reference, bit for bit, over
awkward chunkings (zeros, one chunk, many, empty input), trailing shapes, every kind of
dtype (FP8, integer, bool, complex, float64), non-contiguous input; autograd; opcheck;
errors raised before any kernel, naming the argument."""

from __future__ import annotations

import pytest
import torch
from conftest import cpu_backends

import recperf  # noqa: F401  registers the ops
from recperf.ops.a2a import permute_chunks
from recperf.ops.a2a_ref import inverse_order, permute_chunks_ref

DTYPES = [
    torch.float64,
    torch.float32,
    torch.bfloat16,
    torch.float16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.int64,
    torch.int8,
    torch.bool,
    torch.complex64,
]
# (chunk sizes, trailing shape): zeros first, last and in a row, a single chunk, one row,
# odd row bytes (3 x int8), one past a power of two, a wide row, an empty trailing dim.
CHUNKINGS = [
    ([3, 0, 2, 0, 0, 5], ()),
    ([0, 0, 1], (3,)),
    ([7], (2, 5)),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1], (1,)),
    ([4, 0, 17, 2], (33,)),
    ([2, 5, 3, 6], (2, 257)),
    ([0, 0], (4,)),
    ([2, 3], (0, 4)),
    ([], (3,)),
]


def rows(n, trailing, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *trailing, generator=g) * 8
    if dtype == torch.bool:
        return x > 0
    if dtype in (torch.int64, torch.int8):
        return x.to(dtype)
    if dtype == torch.complex64:
        return torch.complex(x, -x)
    return x.to(dtype)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def an_order(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def expected_rows(sizes, order):
    starts = [sum(sizes[:j]) for j in range(len(sizes))]
    return [r for j in order for r in range(starts[j], starts[j] + sizes[j])]


@pytest.mark.parametrize("backend", cpu_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_matches_reference_bit_for_bit(backend, dtype):
    for i, (sizes, trailing) in enumerate(CHUNKINGS):
        x = rows(sum(sizes), trailing, dtype, seed=i)
        order = an_order(len(sizes), seed=i)
        out = permute_chunks(x, torch.tensor(sizes, dtype=torch.int64), order, backend=backend)
        ref = permute_chunks_ref(x, torch.tensor(sizes, dtype=torch.int64), order)
        by_index = x[expected_rows(sizes, order.tolist())]
        assert out.shape == x.shape and out.dtype == dtype and out.is_contiguous()
        assert torch.equal(bits(out), bits(ref)), f"{sizes} {trailing} order {order.tolist()}"
        assert torch.equal(bits(out), bits(by_index))


@pytest.mark.parametrize("backend", cpu_backends())
def test_non_contiguous_and_unaligned_input(backend):
    base = rows(40, (6,), torch.float32, seed=3)
    sizes = torch.tensor([5, 0, 7, 8], dtype=torch.int64)
    order = torch.tensor([2, 3, 1, 0])
    for x in (base.t().contiguous().t()[:20], base[::2], base.view(torch.uint8)[1:21, 1:22]):
        out = permute_chunks(x, sizes, order, backend=backend)
        assert torch.equal(bits(out), bits(permute_chunks_ref(x, sizes, order)))


@pytest.mark.parametrize("backend", cpu_backends())
def test_many_chunks_uneven(backend):
    g = torch.Generator().manual_seed(9)
    sizes = torch.randint(0, 4, (129,), generator=g)
    x = rows(int(sizes.sum()), (5,), torch.float16, seed=9)
    order = an_order(129, seed=9)
    out = permute_chunks(x, sizes, order, backend=backend)
    assert torch.equal(bits(out), bits(permute_chunks_ref(x, sizes, order)))


@pytest.mark.parametrize("backend", cpu_backends())
def test_gradient_is_the_inverse_permutation(backend):
    sizes = torch.tensor([3, 0, 2, 4], dtype=torch.int64)
    order = torch.tensor([2, 0, 3, 1])
    x = rows(9, (2, 3), torch.float64, seed=1).requires_grad_(True)
    out = permute_chunks(x, sizes, order, backend=backend)
    grad = torch.randn(out.shape, dtype=torch.float64)
    out.backward(grad)
    # Undo the forward permutation on the gradient: the same op with the inverse order.
    back = permute_chunks(grad, sizes[order], inverse_order(order))
    assert torch.equal(x.grad, back)
    assert torch.autograd.gradcheck(
        lambda t: permute_chunks(t, sizes, order, backend=backend), (x.detach().requires_grad_(),)
    )


@pytest.mark.parametrize("backend", cpu_backends())
def test_opcheck(backend):
    op = torch.ops.recperf.permute_chunks.default
    sizes = torch.tensor([2, 0, 3, 1], dtype=torch.int64)
    order = torch.tensor([3, 1, 0, 2])
    torch.library.opcheck(op, (torch.randn(6, 4, requires_grad=True), sizes, order, backend))
    torch.library.opcheck(op, (torch.randn(6, requires_grad=True), sizes, order, backend))
    torch.library.opcheck(op, (torch.arange(6), sizes, order, backend))


def test_compile_fullgraph():
    torch._dynamo.reset()
    sizes = torch.tensor([2, 1, 3], dtype=torch.int64)
    order = torch.tensor([1, 2, 0])

    def f(x):
        return permute_chunks(x * 2, sizes, order) + 1

    x = torch.randn(6, 5)
    assert torch.equal(torch.compile(f, fullgraph=True)(x), f(x))


X = torch.zeros(5, 2)
SIZES = torch.tensor([2, 3])
ORDER = torch.tensor([1, 0])


@pytest.mark.parametrize(
    "call,error,pattern",
    [
        (
            lambda: permute_chunks(X, torch.tensor([2, 2]), ORDER),
            ValueError,
            r"chunk_sizes must sum to input's rows \(5\), got 4",
        ),
        (
            lambda: permute_chunks(X, torch.tensor([6, -1]), ORDER),
            ValueError,
            r"chunk_sizes must be >= 0, got chunk_sizes\[1\] = -1",
        ),
        (
            lambda: permute_chunks(X, SIZES, torch.tensor([1, 1])),
            ValueError,
            r"order must be a permutation of 0..1, got \[1, 1\]",
        ),
        (
            lambda: permute_chunks(X, SIZES, torch.tensor([0, 2])),
            ValueError,
            r"order must be a permutation",
        ),
        (
            lambda: permute_chunks(X, SIZES, torch.tensor([0, 1, 2])),
            ValueError,
            r"order must have one entry per chunk \(2\), got 3",
        ),
        (
            lambda: permute_chunks(X, SIZES.int(), ORDER),
            TypeError,
            r"chunk_sizes must be int64, got torch.int32",
        ),
        (
            lambda: permute_chunks(X, SIZES, ORDER.float()),
            TypeError,
            r"order must be int64, got torch.float32",
        ),
        (
            lambda: permute_chunks(X, SIZES[None], ORDER),
            ValueError,
            r"chunk_sizes must have rank 1 \(\[C\]\), got rank 2",
        ),
        (
            lambda: permute_chunks(torch.tensor(1.0), SIZES, ORDER),
            ValueError,
            r"input must have rank >= 1",
        ),
        (
            lambda: permute_chunks(X, SIZES.to("meta"), ORDER),
            ValueError,
            r"chunk_sizes must be on the CPU or on input's device",
        ),
        (
            lambda: permute_chunks(X, SIZES, ORDER, backend="fastest"),
            ValueError,
            r"backend must be one of",
        ),
    ],
)
def test_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize(
    "args,error,pattern",
    [
        (
            (X, torch.tensor([2, 2]), ORDER),
            ValueError,
            r"chunk_sizes must sum to input's rows \(5\), got 4",
        ),
        (
            (X, SIZES, torch.tensor([1, 1])),
            ValueError,
            r"order must be a permutation of 0..1, got order\[1\] = 1 \(repeated\)",
        ),
        ((X, SIZES.int(), ORDER), TypeError, r"chunk_sizes must be int64, got Int"),
        ((torch.tensor(1.0), SIZES, ORDER), ValueError, r"input must have rank >= 1"),
    ],
)
def test_compiled_kernel_checks(args, error, pattern):
    with pytest.raises(error, match=pattern):
        torch.ops.recperf_kernels.permute_chunks(*args)
