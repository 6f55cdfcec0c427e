#!/usr/bin/env python3
"""fashion_cnn's layers under CPU autocast: bf16 against fp32, one thread, in one invocation.

Explains what train.precision = "bf16" costs on a CPU: LibTorch sends conv2d and linear to bfloat16, which runs on
oneDNN's bf16 kernels where the CPU has AVX512-BF16 or AMX and on reference paths elsewhere. Run with Debian's
/usr/bin/python3 (python3-torch, the same LibTorch as dptrain's build). Prints a Markdown table.
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

REPEATS = 3


def milliseconds(fn):
    fn()
    start = time.perf_counter()
    for _ in range(REPEATS):
        fn()
    return (time.perf_counter() - start) / REPEATS * 1000


def forward_backward(module, x, bf16):
    def run():
        inputs = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = module(inputs)
        out.float().sum().backward()
    return run


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = 64  # the main job's per-rank batch
    layers = [
        ("conv1 5x5, 1 -> 32, 28x28", nn.Conv2d(1, 32, 5, padding=2), torch.randn(batch, 1, 28, 28)),
        ("conv2 5x5, 32 -> 64, 14x14", nn.Conv2d(32, 64, 5, padding=2), torch.randn(batch, 32, 14, 14)),
        ("fc1 3136 -> 1024", nn.Linear(3136, 1024), torch.randn(batch, 3136)),
        ("relu + max_pool2d, 32x28x28", lambda x: F.max_pool2d(torch.relu(x), 2), torch.randn(batch, 32, 28, 28)),
    ]
    print("| layer (batch %d), forward + backward | fp32 ms | bf16 ms | bf16 / fp32 |" % batch)
    print("|---|---:|---:|---:|")
    for name, module, x in layers:
        fp32 = milliseconds(forward_backward(module, x, False))
        bf16 = milliseconds(forward_backward(module, x, True))
        print("| %s | %.1f | %.1f | %.1fx |" % (name, fp32, bf16, bf16 / fp32))
    flags = open("/proc/cpuinfo").read()
    native = any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
    print("\nCPU bfloat16 arithmetic (avx512_bf16 or amx_bf16 in /proc/cpuinfo): %s" % ("yes" if native else "no"))


if __name__ == "__main__":
    main()
