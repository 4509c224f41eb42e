"""The pack/permute op of the hierarchical all-to-all: ``torch.ops.recperf.permute_chunks``
(schema in csrc/ops/a2a.cpp).

``permute_chunks(input, chunk_sizes, order)``: input [R, ...] of any dtype is a run of C
chunks of chunk_sizes[j] rows; the output (same shape, contiguous) is those chunks in the
new order: output chunk i = input chunk order[i]. The kernels move bytes, so FP8, integer,
bool and complex rows are permuted exactly like float ones.

chunk_sizes and order are int64 [C] on the CPU (host metadata, like all_to_all_single's
split sizes) or on input's device (then reading them synchronizes with it). Here: the
checks, the device kernel (which validates, then asks the dispatcher for a backend), the
fake kernel (output shape = input shape), autograd (the gradient goes back through the
inverse permutation, by the same op) and the typed wrapper.
"""

from __future__ import annotations

import torch

from recperf import dispatch
from recperf.ops import a2a_backends  # registers the permute_chunks backends
from recperf.ops._checks import check_tensor, checked_types
from recperf.ops.a2a_ref import inverse_order

_ops = torch.ops.recperf


# ------------------------------------------------------------------------------------
# Checks: metadata (run by the device and fake kernels), then values (device kernel only).


def _check_vector(t: object, name: str, input: torch.Tensor) -> None:
    check_tensor(t, name)
    if t.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must have rank 1 ([C]), got rank {t.dim()}")
    if t.device.type != "cpu" and t.device != input.device:
        raise ValueError(
            f"{name} must be on the CPU or on input's device ({input.device}), got {t.device}"
        )


def _check_meta(input: object, chunk_sizes: object, order: object) -> None:
    check_tensor(input, "input")
    if input.dim() < 1:
        raise ValueError("input must have rank >= 1 ([R, ...] rows), got rank 0")
    if input.dtype not in a2a_backends.BYTE_DTYPES:
        raise TypeError(f"input must have a whole-byte dtype, got {input.dtype}")
    _check_vector(chunk_sizes, "chunk_sizes", input)
    _check_vector(order, "order", input)
    if order.shape[0] != chunk_sizes.shape[0]:
        raise ValueError(
            f"order must have one entry per chunk ({chunk_sizes.shape[0]}), got {order.shape[0]}"
        )


def _check_values(input: torch.Tensor, chunk_sizes: torch.Tensor, order: torch.Tensor) -> None:
    sizes = chunk_sizes.tolist()
    for j, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"chunk_sizes must be >= 0, got chunk_sizes[{j}] = {size}")
    if sum(sizes) != input.shape[0]:
        raise ValueError(
            f"chunk_sizes must sum to input's rows ({input.shape[0]}), got {sum(sizes)}"
        )
    given = order.tolist()
    if sorted(given) != list(range(len(sizes))):
        shown = given if len(given) <= 16 else [*given[:16], "..."]
        raise ValueError(f"order must be a permutation of 0..{len(sizes) - 1}, got {shown}")


# ------------------------------------------------------------------------------------
# Device kernel, fake kernel, autograd


@torch.library.register_kernel("recperf::permute_chunks", ("cpu", "cuda"))
def _permute_chunks_kernel(input, chunk_sizes, order, backend="auto"):
    _check_meta(input, chunk_sizes, order)
    _check_values(input, chunk_sizes, order)
    row_bytes = input[:1].nbytes
    inputs = dispatch.Inputs(
        device=input.device,
        dtype=input.dtype,
        shape={"R": input.shape[0], "row_bytes": row_bytes, "C": chunk_sizes.shape[0]},
    )
    # Nothing to move needs no kernel: the reference handles it without a launch.
    requested = "torch" if input.numel() == 0 else backend
    impl = dispatch.choose("permute_chunks", inputs, requested)
    return impl.fn(input, chunk_sizes, order)


@torch.library.register_fake("recperf::permute_chunks")
def _permute_chunks_fake(input, chunk_sizes, order, backend="auto"):
    _check_meta(input, chunk_sizes, order)
    dispatch.forced_backend(backend)
    return input.new_empty(input.shape)


def _setup(ctx, inputs, output):
    _, chunk_sizes, order, backend = inputs
    ctx.save_for_backward(chunk_sizes, order)
    ctx.backend = backend


def _backward(ctx, grad):
    # Output chunk i (chunk_sizes[order[i]] rows) came from input chunk order[i]: the
    # inverse permutation of the output's chunks puts every gradient row back.
    chunk_sizes, order = ctx.saved_tensors
    grad_input = _ops.permute_chunks(grad, chunk_sizes[order], inverse_order(order), ctx.backend)
    return grad_input, None, None, None


torch.library.register_autograd("recperf::permute_chunks", _backward, setup_context=_setup)


# ------------------------------------------------------------------------------------
# Typed wrapper


@checked_types
def permute_chunks(
    input: torch.Tensor,
    chunk_sizes: torch.Tensor,
    order: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """Chunks of rows of input [R, ...] in a new order: output chunk i = input chunk
    order[i], with chunk_sizes int64 [C] (rows per chunk, summing to R) and order int64 [C]
    a permutation. Any dtype; exact (bytes are copied). Differentiable."""
    return _ops.permute_chunks(input, chunk_sizes, order, backend)
