"""Writes a tiny IDX pair (images, labels) whose class shows as a bright band, for the CLI tests."""
import gzip
import random
import struct
import sys

images_path, labels_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(5)
labels = [rng.randrange(10) for _ in range(count)]
pixels = bytearray()
for label in labels:
    for row in range(28):
        for _ in range(28):
            pixels.append(200 + rng.randrange(56) if row // 3 == label else rng.randrange(80))
with gzip.open(images_path, "wb") as f:
    f.write(struct.pack(">IIII", 0x803, count, 28, 28) + bytes(pixels))
with gzip.open(labels_path, "wb") as f:
    f.write(struct.pack(">II", 0x801, count) + bytes(labels))
