"""An alpha-beta model of one embedding exchange: flat all-to-all vs hierarchical vs DMT
towers, for H hosts x L GPUs. These are MODEL PREDICTIONS, not measurements.

A message of n bytes costs alpha + n / beta on its link; a rank's messages on one link
are serialized (the bytes share its bandwidth, and each message pays its latency).
m = bytes a rank sends each peer in the flat exchange.

* flat: L - 1 messages of m over NVLink and L (H - 1) over the GPU's NIC, concurrently:
  max((L - 1)(a_nv + m / b_nv), L (H - 1)(a_nic + m / b_nic)).
* hierarchical: L - 1 messages of H m over NVLink, then H - 1 messages of L m over the NIC
  (one after the other), plus two pack passes over the rank's W m bytes in HBM
  (read + write each). Same NIC bytes as flat, L times fewer NIC messages.
* tower (DMT): as hierarchical, but only the tower module's output crosses hosts: the NIC
  bytes times --tower-ratio (output bytes / input bytes of the tower module). The tower
  module's compute is not modeled.

Defaults (all overridable):
* NVLink: 450 GB/s per direction per GPU, H100 SXM NVLink 4 (900 GB/s bidirectional:
  NVIDIA H100 datasheet); NVIDIA's p2pBandwidthLatencyTest measures about 380 GB/s
  (NVIDIA/nccl issue 1264), so expect ~15% worse in practice.
* NIC: 400 Gb/s = 50 GB/s per direction, one ConnectX-7 NDR port per GPU (DGX H100:
  8 x 400 Gb/s ConnectX-7 for the compute fabric).
* Latencies: 2 us per NVLink message, 5 us per NIC message: hardware latency is ~1 us
  through NVSwitch and ~2-5 us over NDR InfiniBand (in-rack to cross-rack); a posted NCCL
  message costs a few us on top. Measure yours (nccl-tests alltoall_perf) and pass them.
* HBM: 3350 GB/s (H100 SXM5 datasheet), for the pack passes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from recperf.cli_args import (
    Parser,
    exit_code,
    int_at_least,
    nonnegative_float,
    positive_float,
    positive_int,
)


@dataclass(frozen=True)
class Links:
    intra_gbps: float = 450.0  # GB/s per direction: NVLink 4
    intra_latency_us: float = 2.0
    nic_gbit: float = 400.0  # Gb/s: ConnectX-7 NDR
    nic_latency_us: float = 5.0
    hbm_gbps: float = 3350.0  # GB/s: H100 SXM5 HBM3

    def intra_us(self, n: float) -> float:
        return self.intra_latency_us + n / (self.intra_gbps * 1e3)  # GB/s = 1e3 bytes/us

    def nic_us(self, n: float) -> float:
        return self.nic_latency_us + n / (self.nic_gbit / 8 * 1e3)

    def pack_us(self, n: float) -> float:
        return 2 * n / (self.hbm_gbps * 1e3)  # read and write


@dataclass(frozen=True)
class Prediction:
    hosts: int
    local: int
    flat_us: float
    hierarchical_us: float
    tower_us: float


def predict(hosts: int, local: int, message_bytes: float, links: Links, tower_ratio: float):
    H, L, m = hosts, local, message_bytes
    W = H * L
    intra_flat = (L - 1) * links.intra_us(m) if L > 1 else 0.0
    nic_flat = L * (H - 1) * links.nic_us(m) if H > 1 else 0.0
    flat = max(intra_flat, nic_flat)
    step1 = (L - 1) * links.intra_us(H * m) if L > 1 else 0.0
    packs = (1 + (H > 1)) * links.pack_us(W * m) if L > 1 else 0.0
    step2 = (H - 1) * links.nic_us(L * m) if H > 1 else 0.0
    step2_tower = (H - 1) * links.nic_us(tower_ratio * L * m) if H > 1 else 0.0
    return Prediction(H, L, flat, step1 + packs + step2, step1 + packs + step2_tower)


def gpu_counts(lo: int, hi: int) -> list[int]:
    counts, n = [], lo
    while n <= hi:
        counts.append(n)
        n *= 2
    return counts


def parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(float(t))


def message_bytes(text: str) -> int:
    """--message-bytes: a byte count > 0 (64K, 1M, 1.5MiB, ...)."""
    try:
        value = parse_bytes(text)
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a byte count > 0 such as 65536, 64K or 1MiB, got {text!r}"
        )
    return value


def table(args: argparse.Namespace) -> list[str]:
    links = Links(
        args.intra_gbps, args.intra_latency_us, args.nic_gbit, args.nic_latency_us, args.hbm_gbps
    )
    lines = [
        "MODEL PREDICTIONS (alpha-beta), not measurements: time of one all-to-all per rank",
        f"per-peer message {args.message_bytes} B; NVLink {links.intra_gbps:g} GB/s + "
        f"{links.intra_latency_us:g} us/msg; NIC {links.nic_gbit:g} Gb/s + "
        f"{links.nic_latency_us:g} us/msg; HBM {links.hbm_gbps:g} GB/s; "
        f"tower output/input {args.tower_ratio:g}",
        f"{'GPUs':>6} {'hosts x L':>10} {'flat us':>11} {'hier us':>11} {'tower us':>11} "
        f"{'hier/flat':>10} {'tower/flat':>11}",
    ]
    for W in gpu_counts(args.min_gpus, args.max_gpus):
        L = min(args.gpus_per_host, W)
        if W % L:
            continue
        p = predict(W // L, L, args.message_bytes, links, args.tower_ratio)
        lines.append(
            f"{W:>6} {f'{p.hosts} x {p.local}':>10} {p.flat_us:>11.1f} {p.hierarchical_us:>11.1f} "
            f"{p.tower_us:>11.1f} {p.hierarchical_us / p.flat_us:>10.2f} "
            f"{p.tower_us / p.flat_us:>11.2f}"
        )
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The simulator's options, for its own parser or a ``recperf a2a-sim`` subparser."""
    d = Links()
    p.add_argument(
        "--message-bytes",
        type=message_bytes,
        default=64 << 10,
        help="bytes each rank sends each peer in the flat exchange (64K, 1M, ...)",
    )
    p.add_argument("--gpus-per-host", type=positive_int, default=8)
    p.add_argument("--min-gpus", type=int_at_least(2), default=2)
    p.add_argument("--max-gpus", type=int_at_least(2), default=1024)
    p.add_argument(
        "--intra-gbps", type=positive_float, default=d.intra_gbps, help="GB/s per direction"
    )
    p.add_argument("--intra-latency-us", type=nonnegative_float, default=d.intra_latency_us)
    p.add_argument("--nic-gbit", type=positive_float, default=d.nic_gbit, help="Gb/s per GPU")
    p.add_argument("--nic-latency-us", type=nonnegative_float, default=d.nic_latency_us)
    p.add_argument("--hbm-gbps", type=positive_float, default=d.hbm_gbps)
    p.add_argument(
        "--tower-ratio",
        type=positive_float,
        default=0.25,
        help="tower module output bytes / input bytes (DMT's compression)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="recperf a2a-sim",
        description="Alpha-beta model of flat vs hierarchical vs tower embedding exchange "
        "(predictions, not measurements).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the table for parsed arguments (each flag checked by its type); 2 when
    --min-gpus exceeds --max-gpus."""
    if args.min_gpus > args.max_gpus:
        print(
            f"recperf a2a-sim: error: --min-gpus {args.min_gpus} exceeds --max-gpus "
            f"{args.max_gpus}",
            file=sys.stderr,
        )
        return 2
    print("\n".join(table(args)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return exit_code(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
