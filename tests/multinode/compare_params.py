"""Compares the model parameters of two `dptrain ckpt export` directories: same names and shapes, and
max |a - b| / max |b| over all parameters at most --rtol (0: bit-identical). Prints the relative difference."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from export_load import read_safetensors  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--rtol", type=float, required=True)
    args = parser.parse_args()
    a = read_safetensors(os.path.join(args.a, "model.safetensors"))
    b = read_safetensors(os.path.join(args.b, "model.safetensors"))
    if sorted(a) != sorted(b):
        sys.exit(f"different parameters: {sorted(set(a) ^ set(b))}")
    diff = scale = 0.0
    for name in a:
        if a[name].shape != b[name].shape:
            sys.exit(f"{name}: shape {tuple(a[name].shape)} vs {tuple(b[name].shape)}")
        diff = max(diff, (a[name].double() - b[name].double()).abs().max().item())
        scale = max(scale, b[name].double().abs().max().item())
    relative = diff / scale if scale > 0 else diff
    print(f"relative difference {relative:.3g} over {len(a)} tensors")
    if relative > args.rtol:
        sys.exit(f"relative difference {relative:.3g} exceeds {args.rtol:g}")


if __name__ == "__main__":
    main()
