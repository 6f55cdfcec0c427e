#!/usr/bin/python3
"""PyTorch reference for dptrain's benchmarks: one of dptrain's built-in models (the same layers) with Adam, as
PyTorch DDP (gloo, 127.0.0.1) with --world N >= 2 or as a plain PyTorch loop with --world 1. Started by mpirun
(one process per rank, e.g. across hosts), it takes the world from Open MPI's variables and meets at --master-addr.
Batches are synthetic, or read from an HDF5 file of dptrain's (--data, the datasets "inputs" and "labels" that
`dptrain data synth` / `import-text` write) into memory first. Prints one line:
"pytorch_ddp: world N, ... samples/s TOTAL", or with --json one JSON object with the figures.
Run with Debian's python3 (/usr/bin/python3)."""
import argparse
import json
import math
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


# Set in each process that Open MPI's mpirun starts.
MPI_RANK = "OMPI_COMM_WORLD_RANK"


class FashionCnn(nn.Module):
    """dptrain's fashion_cnn (train/models.cpp), dropout 0."""

    def __init__(self, in_channels=1, image_size=28, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (image_size // 4) ** 2, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Mlp(nn.Module):
    """dptrain's mlp."""

    def __init__(self, inputs=784, hidden=256, num_classes=10):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def conv(cin, cout, kernel, stride):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class ResidualBlock(nn.Module):
    def __init__(self, cin, planes, stride, bottleneck):
        super().__init__()
        cout = planes * 4 if bottleneck else planes
        if bottleneck:
            self.body = nn.Sequential(conv(cin, planes, 1, 1), nn.BatchNorm2d(planes), nn.ReLU(),
                                      conv(planes, planes, 3, stride), nn.BatchNorm2d(planes), nn.ReLU(),
                                      conv(planes, cout, 1, 1), nn.BatchNorm2d(cout))
        else:
            self.body = nn.Sequential(conv(cin, planes, 3, stride), nn.BatchNorm2d(planes), nn.ReLU(),
                                      conv(planes, planes, 3, 1), nn.BatchNorm2d(planes))
        self.shortcut = (nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        return F.relu(self.body(x) + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    """dptrain's resnet18 / resnet50 (train/resnet.cpp)."""

    def __init__(self, blocks, bottleneck, imagenet_stem, in_channels=3, num_classes=10, width=64):
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(conv(in_channels, width, 7, 2), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(conv(in_channels, width, 3, 1), nn.BatchNorm2d(width), nn.ReLU())
        layers, channels = [], width
        for stage, count in enumerate(blocks):
            for b in range(count):
                layers.append(ResidualBlock(channels, width << stage, 2 if stage > 0 and b == 0 else 1, bottleneck))
                channels = (width << stage) * (4 if bottleneck else 1)
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


class DecoderBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x, future):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        attended = (scores.masked_fill(future, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(attended)
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Gpt(nn.Module):
    """dptrain's gpt (train/gpt.cpp): the same explicit attention, tied embeddings."""

    def __init__(self, vocab=256, context=128, layers=4, heads=4, width=256):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(DecoderBlock(width, heads) for _ in range(layers))
        self.final_norm = nn.LayerNorm(width)

    def forward(self, tokens):
        ids = tokens.long()
        t = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(t))
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        for block in self.blocks:
            x = block(x, future)
        return self.final_norm(x) @ self.tokens.weight.t()


MODELS = {
    "fashion_cnn": (FashionCnn, lambda o: (1, 28, 28)),
    "mlp": (Mlp, lambda o: (o.get("inputs", 784),)),
    "resnet18": (lambda **o: ResNet([2, 2, 2, 2], False, bool(o.pop("imagenet_stem", 0)), **o),
                 lambda o: (o.get("in_channels", 3), 32, 32)),
    "resnet50": (lambda **o: ResNet([3, 4, 6, 3], True, bool(o.pop("imagenet_stem", 1)), **o),
                 lambda o: (o.get("in_channels", 3), 64, 64)),
    "gpt": (Gpt, lambda o: (o.get("context", 128),)),
}


def batches(args, options):
    """Eight batches of this run: from --data (scaled by --scale, as dptrain's data.scale) or synthetic."""
    if args.data:
        import h5py
        with h5py.File(args.data, "r") as f:
            n = min(len(f["inputs"]), 8 * args.batch)
            inputs = torch.from_numpy(f["inputs"][:n]).float() * args.scale
            labels = torch.from_numpy(f["labels"][:n]).long()
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(1)  # dptrain's loader adds the channel axis of 2-D samples
        reps = -(-8 * args.batch // n)
        inputs, labels = inputs.repeat((reps,) + (1,) * (inputs.dim() - 1)), labels.repeat((reps,) + (1,) * (labels.dim() - 1))
        return [(inputs[i * args.batch:(i + 1) * args.batch], labels[i * args.batch:(i + 1) * args.batch])
                for i in range(8)]
    shape = MODELS[args.model][1](options)
    if args.model == "gpt":
        vocab = options.get("vocab", 256)
        return [(torch.randint(0, vocab, (args.batch,) + shape).float(), torch.randint(0, vocab, (args.batch,) + shape))
                for _ in range(8)]
    classes = options.get("num_classes", 10)
    return [(torch.randn((args.batch,) + shape), torch.randint(0, classes, (args.batch,))) for _ in range(8)]


def run(rank, args, results):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    options = json.loads(args.model_options)
    model = MODELS[args.model][0](**dict(options))
    if args.world > 1:
        os.environ["MASTER_ADDR"] = args.master_addr
        os.environ["MASTER_PORT"] = str(args.port)
        dist.init_process_group("gloo", rank=rank, world_size=args.world)
        model = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = batches(args, options)

    def steps(n):
        for s in range(n):
            inputs, targets = data[s % 8]
            optimizer.zero_grad()
            output = model(inputs)
            F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1)).backward()
            optimizer.step()

    steps(args.warmup)
    if args.world > 1:
        dist.barrier()
    start = time.perf_counter()
    steps(args.steps)
    if args.world > 1:
        dist.barrier()
    results[rank] = time.perf_counter() - start
    results["parameters"] = sum(p.numel() for p in model.parameters())
    if args.world > 1:
        if MPI_RANK in os.environ:  # no shared results: rank 0 learns the slowest rank's time
            slowest = torch.tensor([results[rank]], dtype=torch.float64)
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            results[rank] = slowest.item()
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64, help="samples per rank and step")
    parser.add_argument("--port", type=int, default=29533)
    parser.add_argument("--master-addr", default="127.0.0.1", help="rank 0's address (under mpirun: its host's)")
    parser.add_argument("--model", default="fashion_cnn", choices=sorted(MODELS))
    parser.add_argument("--model-options", default="{}", help="JSON, as dptrain's [model.options]")
    parser.add_argument("--data", default="", help="HDF5 file with 'inputs' and 'labels' (default: synthetic)")
    parser.add_argument("--scale", type=float, default=1.0, help="inputs are multiplied by this (data.scale)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if MPI_RANK in os.environ:
        rank = int(os.environ[MPI_RANK])
        args.world = int(os.environ["OMPI_COMM_WORLD_SIZE"])
        results = {}
        run(rank, args, results)
        if rank != 0:
            return
        results = {"parameters": results["parameters"], 0: results[rank]}
    else:
        results = mp.Manager().dict()
        if args.world == 1:
            run(0, args, results)
        else:
            mp.spawn(run, args=(args, results), nprocs=args.world, join=True)
    parameters = results.pop("parameters")
    seconds = max(results.values())
    total = args.world * args.batch * args.steps / seconds
    if args.json:
        print(json.dumps({"samples_per_s": total, "step_s": seconds / args.steps, "parameters": parameters,
                          "torch": torch.__version__}))
        return
    print(f"pytorch_ddp: world {args.world}, {args.model}, batch {args.batch}/rank, Adam, {args.threads} thread(s)/rank, "
          f"{args.steps} steps after {args.warmup} warm-up: {total:.1f} samples/s total")


if __name__ == "__main__":
    main()
