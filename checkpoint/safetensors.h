// safetensors files: the tensor format that Python's `safetensors` package (and so PyTorch users) read and write.
#pragma once

#include <map>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace dpt::checkpoint {

// Ordered, because a model's state dict has a meaningful order; decoding returns file (data offset) order.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct SafetensorsData {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

// The format: 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple of 8)
// mapping each name to {dtype, shape, data_offsets}, plus an optional "__metadata__" string map, then the raw
// little-endian tensor data, tightly packed. Supported dtypes: F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL.
// Tensors may live on any device and have any strides: contiguous CPU copies are written.
std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

// The same file as pieces, without copying tensor data: the length and JSON header, then each tensor's bytes
// (contiguous CPU tensors, kept alive here; already contiguous CPU tensors are shared, not copied).
struct SafetensorsPieces {
  std::string header;
  std::vector<at::Tensor> data;
  std::vector<std::string_view> spans() const;  // header first, then the tensors' bytes in order
  std::uint64_t size() const;
};
SafetensorsPieces safetensors_pieces(const NamedTensors& tensors,
                                     const std::map<std::string, std::string>& metadata = {});

// Validates everything (header length, JSON, dtypes, shapes, offsets consistent with dtype*shape, data packed
// without gaps or overlap) and throws dpt::Error naming `what` (the file) on any corruption.
SafetensorsData decode_safetensors_with_metadata(const std::string& bytes, const std::string& what);
NamedTensors decode_safetensors(const std::string& bytes, const std::string& what);

// File versions of the above; writing is atomic (temp file + fsync + rename).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
NamedTensors read_safetensors(const std::string& path);

}  // namespace dpt::checkpoint
