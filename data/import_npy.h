// NumPy .npy arrays -> one HDF5 file with an inputs and a targets dataset, streamed and chunked for shuffled reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::data {

// The header of a .npy file (format versions 1, 2 and 3).
struct NpyHeader {
  std::string descr;  // numpy dtype string, e.g. "<f4", "|u1", ">i2"
  std::vector<std::int64_t> shape;
  std::int64_t data_offset = 0;  // bytes before the array data
  std::int64_t item_size = 0;
};

// Parses and checks the header: C order, a plain integer or float dtype, and a file exactly as long as the shape says.
NpyHeader read_npy_header(const std::string& path);

// Writes out_path with datasets `inputs_name` [N, ...] and `targets_name` [N] holding the arrays' values in their
// stored dtype and byte order. Chunks hold whole samples, about kNpyChunkBytes each, uncompressed: a shuffled batch
// reads single samples, and a compressed chunk would be inflated whole for each. Reads and writes in blocks, so
// arrays larger than memory work. Writes a temporary file and renames it, so out_path is never half written.
void import_npy(const std::string& inputs_npy, const std::string& targets_npy, const std::string& out_path,
                const std::string& inputs_name = "images", const std::string& targets_name = "labels");
constexpr std::int64_t kNpyChunkBytes = 1 << 20;

}  // namespace dpt::data
