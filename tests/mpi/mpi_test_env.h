// Shared state of the multi-rank tests: the MPI runtime and a scratch directory every rank can see.
#pragma once

#include <string>

#include "core/runtime.h"

namespace dpt::testing {

const Runtime& runtime();
// A directory created by rank 0 and known to every rank; removed after the tests.
const std::string& scratch_dir();
// Writes a small IDX-imported HDF5 dataset of `n` 28x28 images with 10 learnable classes (same on every call).
// Rank 0 writes, every rank returns the path once it exists.
std::string make_dataset(const std::string& name, int n);

}  // namespace dpt::testing
