# Writes an HDF5 file with h5py (several dtypes, byte orders, chunkings, filters) for hdf5_source_test's cross-check.
# Element k (flat index within a dataset) holds the formula named beside each dataset; the C++ test recomputes it.
import sys

import h5py
import numpy as np

N = 13


def flat(shape, dtype, values):
    return values(np.arange(int(np.prod(shape)))).astype(dtype).reshape(shape)


with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("u8", data=flat((N, 4, 5), "u1", lambda k: (k * 7 + 3) % 256),
                     chunks=(3, 4, 5), compression="gzip", compression_opts=4, shuffle=True)
    f.create_dataset("i16", data=flat((N, 6), "<i2", lambda k: k * 37 % 2001 - 1000))
    f.create_dataset("i32be", data=flat((N, 6), ">i4", lambda k: k * 100003 - 5000000), chunks=True)
    f.create_dataset("f16", data=flat((N, 6), "f2", lambda k: (k % 64) * 0.5 - 8), chunks=(5, 6))
    f.create_dataset("f32", data=flat((N, 2, 3), "f4", lambda k: k * 0.25 - 3),
                     chunks=(1, 2, 3), compression="gzip", compression_opts=9)
    f.create_dataset("f64", data=flat((N, 6), "f8", lambda k: k * 0.1 - 2), chunks=(4, 6), fletcher32=True)
    f.create_dataset("labels_u8", data=flat((N,), "u1", lambda k: k * 3 % 10))
    f.create_dataset("labels_i64", data=flat((N,), "i8", lambda k: k - 6), compression="gzip")
    f.create_dataset("labels_u16be", data=flat((N,), ">u2", lambda k: k * 1000))
