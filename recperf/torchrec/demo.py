"""A recperf model trained from KJT input with its tables sharded by torchrec's DMP:

    torchrun --nproc-per-node 4 -m recperf.torchrec.demo --local-size 2 --sharding table_wise

Each rank trains on its own rows of synthetic data (tables by torchrec's fused exact SGD,
dense by SGD over DDP) and prints its losses and the table bytes it holds."""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist


def main(argv: list[str] | None = None) -> None:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    from recperf.data import SyntheticConfig, generate
    from recperf.models import build_model
    from recperf.torchrec.sharding import local_table_bytes, shard_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="wukong")
    p.add_argument("--sharding", default="table_wise")
    p.add_argument("--local-size", type=int, default=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args(argv)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = generate(SyntheticConfig(rows=2000, sequence_length=4))
    torch.manual_seed(0)
    model = build_model(a.model, data.spec, dim=16, tables="torchrec")
    fused = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.05}
    dmp = shard_model(model, a.sharding, a.local_size, fused_params=fused)
    opt = torch.optim.SGD([p for k, p in dmp.named_parameters() if ".ebc." not in k], lr=0.05)
    stream = data.kjt_batches(a.batch_size, seed=rank)
    for _ in range(a.steps):
        batch = next(stream)
        logits = dmp(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(
        f"rank {rank}/{world}: loss {float(loss.detach()):.4f}, "
        f"table bytes held {local_table_bytes(dmp):,}",
        flush=True,
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
