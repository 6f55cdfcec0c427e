# `write DIR`: numpy.save arrays of each dtype for import_npy_test; `check DIR`: h5py reads the HDF5 files that
# `dptrain data import-npy` made of them and compares every value and dtype with numpy's originals.
import os
import sys

import h5py
import numpy as np

N = 37
ARRAYS = {
    "u1": lambda: (np.arange(N * 3 * 4) * 7 % 256).astype("u1").reshape(N, 3, 4),
    "i2be": lambda: (np.arange(N * 5) * 37 - 700).astype(">i2").reshape(N, 5),
    "f2": lambda: ((np.arange(N * 2) % 64) * 0.5 - 8).astype("f2").reshape(N, 2),
    "f4": lambda: (np.arange(N * 6) * 0.25 - 3).astype("<f4").reshape(N, 2, 3),
    "f8": lambda: (np.arange(N) * 0.1 - 2).astype("f8").reshape(N, 1),
    "i8": lambda: (np.arange(N * 4) - 50).astype("i8").reshape(N, 4),
}
LABELS = lambda: (np.arange(N) * 3 % 10).astype("<i8")


def write(folder):
    for name, make in ARRAYS.items():
        np.save(os.path.join(folder, name + ".npy"), make())
    np.save(os.path.join(folder, "labels.npy"), LABELS())


def check(folder):
    for name, make in ARRAYS.items():
        with h5py.File(os.path.join(folder, name + ".h5"), "r") as f:
            expected = make()
            got = f["images"][...]
            assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
            assert np.array_equal(got, expected), name
            assert np.array_equal(f["labels"][...], LABELS()), name
            assert f["images"].chunks is not None and f["images"].chunks[1:] == expected.shape[1:], name


{"write": write, "check": check}[sys.argv[1]](sys.argv[2])
