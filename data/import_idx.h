// IDX (MNIST / Fashion-MNIST) files -> HDF5 datasets "images" and "labels", and a readable HDF5 file report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::data {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

// Reads a gzip-compressed or raw IDX file; checks the magic, the element type 0x08 (uint8) and the data size.
IdxArray read_idx(const std::string& path);

// Writes out_path with "images" [N, rows, cols] uint8 and "labels" [N] uint8, chunked by kIdxChunkSamples samples.
// N must agree between the two files. Writes a temporary file and renames it, so out_path is never half written.
void import_idx(const std::string& images_path, const std::string& labels_path, const std::string& out_path);
constexpr std::int64_t kIdxChunkSamples = 1024;

// A directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
// t10k-labels-idx1-ubyte.gz (or the same names without .gz) -> out_dir/train.h5 and out_dir/test.h5.
// Creates out_dir. Skips a split whose output is newer than its inputs; returns the paths it wrote.
std::vector<std::string> import_idx_dir(const std::string& dir, const std::string& out_dir);

// Each dataset of an HDF5 file with shape, dtype, chunking, compression and sample count, one per line.
std::string inspect_hdf5(const std::string& path);

}  // namespace dpt::data
