# h5py baseline for bench/data_loader: the same shuffled batches, each read with h5py's own fancy indexing on the
# batch's sorted indices (what a typical PyTorch Dataset over HDF5 does). Prints "samples seconds".
# Usage: /usr/bin/python3 data_loader_h5py.py FILE ORDER.bin BATCH MAX_BATCHES
import sys
import time

import h5py
import numpy as np

path, order_path, batch, max_batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
order = np.fromfile(order_path, dtype="<i8")
with h5py.File(path, "r") as f:
    images, labels = f["images"], f["labels"]
    samples = 0
    start = time.perf_counter()
    for first in range(0, min(len(order), batch * max_batches), batch):
        indices = np.sort(order[first:first + batch])
        x = images[indices]
        y = labels[indices]
        samples += len(y)
    print(samples, time.perf_counter() - start)
