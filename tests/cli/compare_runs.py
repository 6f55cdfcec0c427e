"""Compares two dptrain runs for the CLI tests (numpy only).

models A B TOL: the float32 tensors of two exported model.safetensors; prints the largest relative difference
  (|a - b| / |b| per tensor) and fails above TOL.
lr A.jsonl B.jsonl MIN: train/lr of the records of A and B logged at the same train/samples; prints how many
  positions both logged and fails when fewer than MIN or when any rate differs by more than 1e-9 relative.
decreasing A.jsonl FIRST: train/lr from step FIRST on falls at every logged step and ends at 0.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors


def records(path):
    with open(path) as f:
        return [r for r in map(json.loads, f) if "train/lr" in r]


def models(a, b, tol):
    ta, tb = read_safetensors(a), read_safetensors(b)
    assert ta.keys() == tb.keys() and ta, f"tensor names differ: {sorted(ta)} vs {sorted(tb)}"
    worst = max(np.linalg.norm(ta[k] - tb[k]) / max(np.linalg.norm(tb[k]), 1e-30) for k in ta)
    print(f"largest relative difference {worst:.3g} over {len(ta)} tensors")
    return worst <= float(tol)


def lr(a, b, minimum):
    rates = {r["train/samples"]: r["train/lr"] for r in records(b)}
    common = [(r["train/samples"], r["train/lr"], rates[r["train/samples"]])
              for r in records(a) if r["train/samples"] in rates]
    bad = [c for c in common if abs(c[1] - c[2]) > 1e-9 * max(abs(c[2]), 1e-12)]
    print(f"{len(common)} positions logged by both, {len(bad)} with another rate: {bad[:3]}")
    return len(common) >= int(minimum) and not bad


def decreasing(a, first):
    rates = [r["train/lr"] for r in records(a) if r["step"] >= int(first)]
    print(f"train/lr from step {first}: {rates}")
    return len(rates) > 2 and all(x > y for x, y in zip(rates, rates[1:])) and rates[-1] == 0


if __name__ == "__main__":
    check = {"models": models, "lr": lr, "decreasing": decreasing}[sys.argv[1]]
    sys.exit(0 if check(*sys.argv[2:]) else 1)
