// Test helpers for the data tests: a fresh directory per test and HDF5 files written with the C API.
#pragma once

#include <hdf5.h>

#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dpt::data::test {

// A new empty directory for the running test (defined in hdf5_source_test.cpp).
std::filesystem::path fresh_test_dir();

struct DatasetSpec {
  std::string name;
  hid_t file_type;
  hid_t memory_type;
  std::vector<hsize_t> dims;
  const void* data;
  std::vector<hsize_t> chunk = {};
  int gzip = -1;
};

inline void write_file(const std::string& path, const std::vector<DatasetSpec>& datasets) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (const auto& spec : datasets) {
    const hid_t space = H5Screate_simple(static_cast<int>(spec.dims.size()), spec.dims.data(), nullptr);
    const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    if (!spec.chunk.empty()) H5Pset_chunk(create, static_cast<int>(spec.chunk.size()), spec.chunk.data());
    if (spec.gzip >= 0) H5Pset_deflate(create, static_cast<unsigned>(spec.gzip));
    const hid_t dataset = H5Dcreate2(file, spec.name.c_str(), spec.file_type, space, H5P_DEFAULT, create, H5P_DEFAULT);
    ASSERT_GE(dataset, 0) << spec.name;
    if (spec.data != nullptr) {
      ASSERT_GE(H5Dwrite(dataset, spec.memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, spec.data), 0) << spec.name;
    }
    H5Dclose(dataset);
    H5Pclose(create);
    H5Sclose(space);
  }
  H5Fclose(file);
}

template <typename T>
std::vector<T> iota_values(std::size_t n, T start) {
  std::vector<T> values(n);
  std::iota(values.begin(), values.end(), start);
  return values;
}

}  // namespace dpt::data::test
