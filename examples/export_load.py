"""Loads a `dptrain ckpt export` directory into PyTorch's own fashion_cnn and evaluates it on an HDF5 split.

Needs only torch and h5py (Debian: python3-torch python3-h5py), not dptrain and not the safetensors package:
the file format is simple enough to read here (8-byte header length, JSON header, raw little-endian data).

    dptrain ckpt export latest --dir checkpoints --out exported
    /usr/bin/python3 examples/export_load.py exported --test datasets/fashion-mnist/test.h5
"""
import argparse
import json
import struct

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    body = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


class FashionCnn(nn.Module):
    """The layers of dptrain's fashion_cnn (train/models.cpp), with the same parameter names."""

    def __init__(self, in_channels=1, image_size=28, num_classes=10, dropout=0.0):
        super().__init__()
        side = image_size // 4
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * side * side, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(self.dropout(x))


def load_model(export_dir, config):
    model_name = config["model.name"]
    if model_name != "fashion_cnn":
        raise SystemExit(f"{export_dir}: model '{model_name}' is not fashion_cnn; this example builds fashion_cnn only")
    options = {key[len("model.options."):]: value for key, value in config.items() if key.startswith("model.options.")}
    model = FashionCnn(**{key: type(default)(options[key]) for key, default in
                          [("in_channels", 1), ("image_size", 28), ("num_classes", 10), ("dropout", 0.0)]
                          if key in options})
    model.load_state_dict(read_safetensors(f"{export_dir}/model.safetensors"), strict=True)
    return model.eval()


def evaluate(model, config, test_path):
    with h5py.File(test_path, "r") as f:
        inputs = torch.from_numpy(f[config["data.inputs"]][:])
        targets = torch.from_numpy(f[config["data.targets"]][:]).long()
    correct, loss_sum = 0, 0.0
    scale, mean, std = config["data.scale"], config["data.mean"], config["data.std"]
    with torch.no_grad():
        for begin in range(0, len(targets), 1000):
            x = inputs[begin:begin + 1000].float().mul_(scale / std).add_(-mean / std)  # as dptrain's loader does
            if x.dim() == 3:
                x = x.unsqueeze(1)
            logits = model(x)
            y = targets[begin:begin + 1000]
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return len(targets), correct / len(targets), loss_sum / len(targets)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", help="directory written by dptrain ckpt export")
    parser.add_argument("--test", required=True, help="HDF5 file with the evaluation split")
    args = parser.parse_args()
    with open(f"{args.export_dir}/config.json") as f:
        config = json.load(f)
    samples, accuracy, loss = evaluate(load_model(args.export_dir, config), config, args.test)
    print(f"pytorch: {samples} samples | accuracy {accuracy:.4f} | loss {loss:.4f}")


if __name__ == "__main__":
    main()
