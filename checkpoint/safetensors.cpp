// safetensors encode/decode with strict validation, so a damaged file fails with its name instead of bad weights.
#include "checkpoint/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

#include "checkpoint/durable_file.h"
#include "core/check.h"

namespace dpt::checkpoint {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is copied as raw memory: a big-endian host needs byte swaps");

struct DtypeName {
  at::ScalarType type;
  const char* name;
};

constexpr DtypeName kDtypes[] = {
    {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kHalf, "F16"}, {at::kBFloat16, "BF16"}, {at::kLong, "I64"},
    {at::kInt, "I32"},   {at::kShort, "I16"},  {at::kChar, "I8"},  {at::kByte, "U8"},       {at::kBool, "BOOL"},
};

constexpr const char* kSupported = "F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL";

// The Rust reader refuses headers above 100 MB; the same bound stops a corrupt length from allocating gigabytes.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

constexpr const char* kDamaged = "; the file is damaged or not a safetensors file";

const char* dtype_name(at::ScalarType type, const std::string& tensor) {
  for (const auto& entry : kDtypes) {
    if (entry.type == type) return entry.name;
  }
  DPT_THROW("safetensors: tensor '", tensor, "' has dtype ", at::toString(type),
            ", which cannot be saved; convert it to one of ", kSupported);
}

struct TensorEntry {
  std::string name;
  at::ScalarType type;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;
  std::uint64_t end;
};

TensorEntry parse_entry(const std::string& name, const nlohmann::json& info, const std::string& what) {
  DPT_CHECK(info.is_object(), what, ": safetensors entry '", name, "' is not a JSON object", kDamaged);
  const auto dtype = info.find("dtype");
  DPT_CHECK(dtype != info.end() && dtype->is_string(), what, ": tensor '", name, "' has no string 'dtype'", kDamaged);
  const auto found = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                  [&](const DtypeName& d) { return d.name == dtype->get<std::string>(); });
  DPT_CHECK(found != std::end(kDtypes), what, ": tensor '", name, "' has dtype ", dtype->get<std::string>(),
            ", which dptrain does not read (supported: ", kSupported, ")");

  const auto shape = info.find("shape");
  DPT_CHECK(shape != info.end() && shape->is_array(), what, ": tensor '", name, "' has no 'shape' array", kDamaged);
  TensorEntry entry{name, found->type, {}, 0, 0};
  std::uint64_t expected_bytes = at::elementSize(found->type);
  for (const auto& dim : *shape) {
    DPT_CHECK(dim.is_number_unsigned() && dim.get<std::uint64_t>() <= INT64_MAX, what, ": tensor '", name,
              "' has shape ", shape->dump(), " with a dimension that is not a non-negative integer", kDamaged);
    DPT_CHECK(!__builtin_mul_overflow(expected_bytes, dim.get<std::uint64_t>(), &expected_bytes), what, ": tensor '",
              name, "' has shape ", shape->dump(), ", too large to address", kDamaged);
    entry.shape.push_back(dim.get<std::int64_t>());
  }

  const auto offsets = info.find("data_offsets");
  DPT_CHECK(offsets != info.end() && offsets->is_array() && offsets->size() == 2 &&
                (*offsets)[0].is_number_unsigned() && (*offsets)[1].is_number_unsigned(),
            what, ": tensor '", name, "' has no 'data_offsets' pair of non-negative integers", kDamaged);
  entry.begin = (*offsets)[0].get<std::uint64_t>();
  entry.end = (*offsets)[1].get<std::uint64_t>();
  DPT_CHECK(entry.begin <= entry.end && entry.end - entry.begin == expected_bytes, what, ": tensor '", name,
            "' has data_offsets ", offsets->dump(), " but ", dtype->get<std::string>(), " with shape ", shape->dump(),
            " needs ", expected_bytes, " bytes", kDamaged);
  return entry;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& metadata, const std::string& what) {
  DPT_CHECK(metadata.is_object(), what, ": safetensors __metadata__ is not a JSON object", kDamaged);
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : metadata.items()) {
    DPT_CHECK(value.is_string(), what, ": safetensors __metadata__ value for '", key, "' is not a string", kDamaged);
    out[key] = value.get<std::string>();
  }
  return out;
}

}  // namespace

SafetensorsPieces safetensors_pieces(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  SafetensorsPieces out;
  out.data.reserve(tensors.size());
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    DPT_CHECK(!name.empty() && name != "__metadata__", "safetensors: tensor name '", name,
              "' is empty or reserved; rename the tensor");
    DPT_CHECK(!header.contains(name), "safetensors: tensor name '", name,
              "' appears twice; names in one file must be unique");
    DPT_CHECK(tensor.defined(), "safetensors: tensor '", name, "' is undefined; pass a tensor or leave it out");
    DPT_CHECK(tensor.layout() == at::kStrided, "safetensors: tensor '", name,
              "' is not a dense tensor; call .to_dense() before saving it");
    const char* dtype = dtype_name(tensor.scalar_type(), name);
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    const std::uint64_t bytes = cpu.nbytes();
    header[name] = {{"dtype", dtype},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", nlohmann::json::array({offset, offset + bytes})}};
    offset += bytes;
    out.data.push_back(std::move(cpu));
  }

  std::string json = header.dump();
  // Padding keeps the data 8-byte aligned for readers that map the file.
  json.append((8 - json.size() % 8) % 8, ' ');
  const std::uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) out.header.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  out.header += json;
  return out;
}

std::vector<std::string_view> SafetensorsPieces::spans() const {
  std::vector<std::string_view> out{header};
  for (const auto& tensor : data) {
    if (tensor.nbytes() > 0) out.emplace_back(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes());
  }
  return out;
}

std::uint64_t SafetensorsPieces::size() const {
  std::uint64_t total = header.size();
  for (const auto& tensor : data) total += tensor.nbytes();
  return total;
}

std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  const SafetensorsPieces pieces = safetensors_pieces(tensors, metadata);
  std::string out;
  out.reserve(pieces.size());
  for (const std::string_view piece : pieces.spans()) out.append(piece);
  return out;
}

SafetensorsData decode_safetensors_with_metadata(const std::string& bytes, const std::string& what) {
  DPT_CHECK(bytes.size() >= 8, what, ": ", bytes.size(),
            " bytes is too short for a safetensors file (it starts with an 8-byte header length)", kDamaged);
  std::uint64_t header_length = 0;
  for (int i = 0; i < 8; ++i) header_length |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  DPT_CHECK(header_length <= bytes.size() - 8 && header_length <= kMaxHeaderBytes, what, ": safetensors header length ",
            header_length, " does not fit in the file's ", bytes.size(), " bytes", kDamaged);
  const auto header_begin = bytes.begin() + 8;
  const auto data_offset = 8 + header_length;
  const nlohmann::json header = nlohmann::json::parse(header_begin, header_begin + header_length, nullptr, false);
  DPT_CHECK(!header.is_discarded() && header.is_object(), what, ": safetensors header is not a JSON object", kDamaged);

  SafetensorsData out;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata = parse_metadata(value, what);
    } else {
      entries.push_back(parse_entry(key, value, what));
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Tensors must tile the data exactly, as the Rust reader demands: a gap, an overlap or trailing bytes all mean
  // the offsets are not the ones that were written.
  std::uint64_t expected = 0;
  for (const auto& entry : entries) {
    DPT_CHECK(entry.begin == expected, what, ": tensor '", entry.name, "' data starts at byte ", entry.begin,
              " but should start at ", expected, " (offsets overlap or leave a gap)", kDamaged);
    expected = entry.end;
  }
  const std::uint64_t data_size = bytes.size() - data_offset;
  DPT_CHECK(expected == data_size, what, ": the tensors cover ", expected, " data bytes but the file holds ", data_size,
            " (truncated or extended)", kDamaged);

  out.tensors.reserve(entries.size());
  for (const auto& entry : entries) {
    at::Tensor tensor = at::empty(entry.shape, at::TensorOptions().dtype(entry.type));
    if (entry.end > entry.begin) {
      std::memcpy(tensor.data_ptr(), bytes.data() + data_offset + entry.begin, entry.end - entry.begin);
    }
    out.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return out;
}

NamedTensors decode_safetensors(const std::string& bytes, const std::string& what) {
  return decode_safetensors_with_metadata(bytes, what).tensors;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

NamedTensors read_safetensors(const std::string& path) { return decode_safetensors(read_file(path), path); }

}  // namespace dpt::checkpoint
