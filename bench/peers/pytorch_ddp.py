#!/usr/bin/python3
"""PyTorch reference for bench/ddp_scaling.sh: fashion_cnn with Adam on synthetic batches, as PyTorch DDP (gloo,
127.0.0.1) with --world N >= 2 or as a plain PyTorch loop with --world 1; one thread per rank.
Prints one line: "pytorch_ddp: world N, ... samples/s TOTAL". Run with Debian's python3 (/usr/bin/python3)."""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


class FashionCnn(nn.Module):
    """The same layers as dptrain's fashion_cnn (train/models.cpp), dropout 0."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 1024)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def run(rank, args, port, results):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = FashionCnn()
    if args.world > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=args.world)
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = [torch.randn(args.batch, 1, 28, 28) for _ in range(8)]
    targets = [torch.randint(0, 10, (args.batch,)) for _ in range(8)]

    def steps(n):
        for s in range(n):
            optimizer.zero_grad()
            F.cross_entropy(model(inputs[s % 8]), targets[s % 8]).backward()
            optimizer.step()

    steps(args.warmup)
    if args.world > 1:
        dist.barrier()
    start = time.perf_counter()
    steps(args.steps)
    if args.world > 1:
        dist.barrier()
    results[rank] = time.perf_counter() - start
    if args.world > 1:
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args()
    results = mp.Manager().dict()
    if args.world == 1:
        run(0, args, args.port, results)
    else:
        mp.spawn(run, args=(args, args.port, results), nprocs=args.world, join=True)
    seconds = max(results.values())
    total = args.world * args.batch * args.steps / seconds
    print(f"pytorch_ddp: world {args.world}, fashion_cnn, batch {args.batch}/rank, Adam, 1 thread/rank, "
          f"{args.steps} steps after {args.warmup} warm-up: {total:.1f} samples/s total")


if __name__ == "__main__":
    main()
