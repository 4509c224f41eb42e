"""Embedding exchange, hierarchical vs flat, on real process groups.

    torchrun --nproc-per-node 4 -m recperf.distributed.demo --local-size 2

pretends that 4 processes are 2 hosts x 2 ranks (gloo on CPU; NCCL with one GPU per
process when there are enough GPUs: the same code path). Each rank owns F / W features'
tables and has looked them up for the whole global batch; the exchange gives every rank
all F features for its own samples. The demo checks the hierarchical exchange against
the flat ``all_to_all_single`` bit for bit, forward and backward, reports the error of
the compressed payloads, prints every rank's counters, and with ``--bench`` times both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist

from recperf.distributed import (
    Topology,
    compression_error,
    flat_all_to_all_single,
    hierarchical_all_to_all,
    hierarchical_all_to_all_single,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--local-size", type=int, default=None, help="ranks per (pretend) host")
    p.add_argument("--features", type=int, default=64, help="sparse features in all (F)")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension (D)")
    p.add_argument("--batch", type=int, default=256, help="samples per rank (B)")
    p.add_argument("--uneven", action="store_true", help="ranks get different batch sizes")
    p.add_argument("--bench", default="", help="batch sizes to time, e.g. 64,256,1024")
    p.add_argument("--reps", type=int, default=20)
    return p.parse_args(argv)


def setup() -> torch.device:
    use_nccl = torch.cuda.is_available() and torch.cuda.device_count() >= int(
        os.environ.get("LOCAL_WORLD_SIZE", "1")
    )
    if use_nccl:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return torch.device("cuda", local)
    dist.init_process_group("gloo")
    return torch.device("cpu")


def batch_sizes(W: int, batch: int, uneven: bool) -> list[int]:
    """Samples per rank: the same on every rank of the job (a shared seed)."""
    if not uneven:
        return [batch] * W
    g = torch.Generator().manual_seed(1234)
    return [
        max(0, batch + int(v))
        for v in torch.randint(-batch // 2, batch // 2 + 1, (W,), generator=g)
    ]


def lookups(rank: int, W: int, batches: list[int], features: int, dim: int, device) -> torch.Tensor:
    """This rank's features for every rank's samples: [sum(batches), F / W, D], rows by
    destination rank."""
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(sum(batches), features // W, dim, generator=g)
    return x.to(device)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def check(topology: Topology, args, device) -> bool:
    W, r = topology.world_size, topology.rank
    batches = batch_sizes(W, args.batch, args.uneven)
    x = lookups(r, W, batches, args.features, args.dim, device)
    in_splits, out_splits = batches, [batches[r]] * W
    counters = {}  # what one exchange of each kind sent, on this rank

    def counted(kind: str, fn) -> None:
        topology.reset_counters()
        fn()
        counts = topology.counters["flat" if kind == "flat" else "hierarchical"]
        counters[kind] = counts.as_dict()

    # Forward: hierarchical vs flat, bit for bit.
    flat = x.new_empty((sum(out_splits), *x.shape[1:]))
    counted("flat", lambda: flat_all_to_all_single(flat, x, out_splits, in_splits, topology))
    hier = torch.empty_like(flat)
    counted(
        "hierarchical",
        lambda: hierarchical_all_to_all_single(hier, x, out_splits, in_splits, topology),
    )
    ok = same_bits(hier, flat)
    # Backward: the gradient goes back by the reverse exchange.
    xg = x.clone().requires_grad_(True)
    out = hierarchical_all_to_all(xg, out_splits, in_splits, topology)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(100 + r)).to(device)
    out.backward(grad)
    flat_grad = torch.empty_like(x)
    flat_all_to_all_single(flat_grad, grad, in_splits, out_splits, topology)
    ok &= same_bits(out.detach(), flat) and same_bits(xg.grad, flat_grad)
    # Compressed payloads: bytes saved and the error paid.
    for compress in ("bf16", "fp8"):
        counted(
            f"hierarchical {compress}",
            lambda c=compress: hierarchical_all_to_all(
                x, out_splits, in_splits, topology, compress=c
            ),
        )
    errors = [compression_error(x.cpu(), c) for c in ("bf16", "fp8")]
    report(topology, ok, counters, errors)
    return ok


def report(topology: Topology, ok: bool, counters, errors) -> None:
    rows = [None] * topology.world_size
    dist.all_gather_object(rows, {"ok": ok, "counters": counters}, group=topology.group)
    if topology.rank != 0:
        return
    print(f"{topology}: world {topology.world_size}, backend {dist.get_backend()}")
    print("what one exchange sent, per rank:")
    print("rank  kind               intra msgs  intra MiB  cross msgs  cross MiB  bit-exact")
    for r, row in enumerate(rows):
        for kind, c in row["counters"].items():
            print(
                f"{r:>4}  {kind:<17}  {c['intra_host_messages']:>10}  "
                f"{c['intra_host_bytes'] / 2**20:>9.2f}  {c['cross_host_messages']:>10}  "
                f"{c['cross_host_bytes'] / 2**20:>9.2f}  {row['ok']}"
            )
    for e in errors:
        print(f"compressed payload (rank 0's rows) {e}")
    print("all ranks bit-exact vs flat all_to_all_single:", all(row["ok"] for row in rows))


def bench(topology: Topology, args, device) -> None:
    W, r = topology.world_size, topology.rank
    for batch in (int(b) for b in args.bench.split(",") if b):
        batches = batch_sizes(W, batch, args.uneven)
        x = lookups(r, W, batches, args.features, args.dim, device)
        out = x.new_empty((batches[r] * W, *x.shape[1:]))
        out_splits = [batches[r]] * W
        times = {}
        for name, fn in (
            ("flat", flat_all_to_all_single),
            ("hierarchical", hierarchical_all_to_all_single),
        ):
            samples = []
            for rep in range(args.reps + 3):
                dist.barrier(group=topology.group)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                fn(out, x, out_splits, batches, topology)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = torch.tensor([time.perf_counter() - start])
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX, group=topology.group)
                if rep >= 3:  # warm-up
                    samples.append(elapsed.item() * 1e3)
            times[name] = samples
        if r == 0:
            per_peer = batch * (args.features // W) * args.dim * x.element_size()
            f, h = (statistics.median(times[k]) for k in ("flat", "hierarchical"))
            spread = {k: (min(v), max(v)) for k, v in times.items()}
            print(
                f"batch {batch:>5} per rank ({per_peer / 2**10:.0f} KiB per peer): flat "
                f"{f:.2f} ms [{spread['flat'][0]:.2f}-{spread['flat'][1]:.2f}], hierarchical "
                f"{h:.2f} ms [{spread['hierarchical'][0]:.2f}-{spread['hierarchical'][1]:.2f}]"
                f", ratio {h / f:.2f} (median of {args.reps}, slowest rank each time)"
            )


def main(argv=None) -> int:
    args = parse_args(argv)
    device = setup()
    try:
        topology = Topology(args.local_size)
        if args.features % topology.world_size:
            raise ValueError(
                f"--features must be a multiple of the world size {topology.world_size}"
            )
        ok = check(topology, args, device)
        if args.bench:
            bench(topology, args, device)
        return 0 if ok else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
