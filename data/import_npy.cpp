// .npy import: header parsing with size checks, dtype mapping to HDF5 types, and block-wise atomic HDF5 writing.
#include "data/import_npy.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/check.h"
#include "data/hdf5_file.h"

namespace dpt::data {
namespace fs = std::filesystem;
namespace {

constexpr std::int64_t kCopyBlockBytes = 64LL << 20;

std::int64_t product(const std::vector<std::int64_t>& dims, std::size_t from = 0) {
  return std::accumulate(dims.begin() + static_cast<std::ptrdiff_t>(from), dims.end(), std::int64_t{1},
                         std::multiplies<>());
}

// The text after 'key': in the header dict, e.g. "'<f4', 'fortran_order': False, ...".
std::string header_value(const std::string& header, const std::string& key, const std::string& path) {
  const auto at = header.find("'" + key + "'");
  DPT_CHECK(at != std::string::npos, ".npy file ", path, " has no '", key, "' in its header: it is not a .npy file");
  const auto colon = header.find(':', at);
  DPT_CHECK(colon != std::string::npos, ".npy file ", path, " has a broken header: write it again with numpy.save");
  return header.substr(header.find_first_not_of(' ', colon + 1));
}

// An HDF5 type with the same bytes as numpy's descr: copying needs no conversion.
hdf5::Id hdf5_type(const std::string& descr, const std::string& path) {
  const char order = descr[0];
  const char kind = descr.size() > 1 ? descr[1] : '?';
  const int size = descr.size() > 2 ? std::atoi(descr.c_str() + 2) : 0;
  hid_t base = -1;
  if (kind == 'u' || kind == 'i') {
    const hid_t types[2][4] = {{H5T_STD_U8LE, H5T_STD_U16LE, H5T_STD_U32LE, H5T_STD_U64LE},
                               {H5T_STD_I8LE, H5T_STD_I16LE, H5T_STD_I32LE, H5T_STD_I64LE}};
    const int slot = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
    if (slot >= 0) base = types[kind == 'i' ? 1 : 0][slot];
  } else if (kind == 'f' && (size == 2 || size == 4 || size == 8)) {
    base = size == 8 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  }
  DPT_CHECK(base >= 0 && (order == '<' || order == '>' || order == '|' || order == '='), ".npy file ", path,
            " holds dtype '", descr, "'; supported: unsigned and signed integers, float16, float32, float64");
  hdf5::Id type(hdf5::check(H5Tcopy(base), "cannot copy an HDF5 type"), H5Tclose);
  if (kind == 'f' && size == 2) {
    // IEEE half precision, as h5py defines it: sign bit 15, exponent bits 10-14 (bias 15), mantissa bits 0-9.
    hdf5::check(H5Tset_fields(type.get(), 15, 10, 5, 0, 10), "cannot define float16");
    hdf5::check(H5Tset_size(type.get(), 2), "cannot define float16");
    hdf5::check(H5Tset_ebias(type.get(), 15), "cannot define float16");
  }
  if (order == '>') hdf5::check(H5Tset_order(type.get(), H5T_ORDER_BE), "cannot set big-endian order");
  return type;
}

}  // namespace

NpyHeader read_npy_header(const std::string& path) {
  DPT_CHECK(fs::is_regular_file(path), ".npy file ", path, " does not exist: fix the path");
  std::ifstream in(path, std::ios::binary);
  char prefix[12] = {};
  in.read(prefix, sizeof(prefix));
  DPT_CHECK(in.gcount() >= 10 && std::string(prefix, 6) == "\x93NUMPY", path,
            " is not a .npy file (no \\x93NUMPY magic): write it with numpy.save");
  const int major = static_cast<unsigned char>(prefix[6]);
  DPT_CHECK(major >= 1 && major <= 3, ".npy file ", path, " has format version ", major, "; supported: 1, 2, 3");
  const auto byte = [&](int i) { return static_cast<std::int64_t>(static_cast<unsigned char>(prefix[i])); };
  const std::int64_t header_len = major == 1 ? byte(8) | byte(9) << 8
                                             : byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
  NpyHeader header;
  header.data_offset = (major == 1 ? 10 : 12) + header_len;
  std::string text(static_cast<std::size_t>(header_len), '\0');
  in.seekg(major == 1 ? 10 : 12);
  in.read(text.data(), header_len);
  DPT_CHECK(in.gcount() == header_len, ".npy file ", path, " is truncated inside its header: write it again");

  const std::string descr = header_value(text, "descr", path);
  DPT_CHECK(descr[0] == '\'', ".npy file ", path, " holds a structured dtype ", descr.substr(0, 40),
            "; save a plain numeric array per file");
  header.descr = descr.substr(1, descr.find('\'', 1) - 1);
  DPT_CHECK(header_value(text, "fortran_order", path).rfind("False", 0) == 0, ".npy file ", path,
            " is in Fortran order: save numpy.ascontiguousarray(a) instead");
  const std::string shape = header_value(text, "shape", path);
  const std::string dims = shape.substr(1, shape.find(')') - 1);
  for (std::size_t at = 0; at < dims.size();) {
    const auto next = dims.find(',', at);
    const std::string item = dims.substr(at, next == std::string::npos ? std::string::npos : next - at);
    if (item.find_first_of("0123456789") != std::string::npos) header.shape.push_back(std::stoll(item));
    if (next == std::string::npos) break;
    at = next + 1;
  }
  DPT_CHECK(!header.shape.empty(), ".npy file ", path, " holds a scalar; it must be an array [N, ...]");
  header.item_size = std::atoi(header.descr.c_str() + 2);
  hdf5_type(header.descr, path);  // rejects unsupported dtypes before any data is read
  const auto expected = header.data_offset + product(header.shape) * header.item_size;
  const auto actual = static_cast<std::int64_t>(fs::file_size(path));
  DPT_CHECK(actual == expected, ".npy file ", path, " has ", actual, " bytes but its header (dtype ", header.descr,
            ", shape ", hdf5::shape_string(header.shape), ") needs ", expected, ": it is truncated or corrupt");
  return header;
}

namespace {

void copy_array(hid_t file, const std::string& npy, const NpyHeader& header, const std::string& name,
                const std::string& out_path) {
  const std::string what = "writing dataset '" + name + "' to " + out_path;
  const hdf5::Id type = hdf5_type(header.descr, npy);
  const std::vector<hsize_t> shape(header.shape.begin(), header.shape.end());
  const std::int64_t sample_bytes = product(header.shape, 1) * header.item_size;
  const std::int64_t n = header.shape[0];
  std::vector<hsize_t> chunk = shape;
  chunk[0] = static_cast<hsize_t>(std::clamp<std::int64_t>(kNpyChunkBytes / std::max<std::int64_t>(1, sample_bytes),
                                                           1, std::max<std::int64_t>(1, n)));
  const hdf5::Id space(hdf5::check(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), what),
                       H5Sclose);
  const hdf5::Id create(hdf5::check(H5Pcreate(H5P_DATASET_CREATE), what), H5Pclose);
  if (n > 0 && sample_bytes > 0) {
    hdf5::check(H5Pset_chunk(create.get(), static_cast<int>(chunk.size()), chunk.data()), what);
  }
  const hdf5::Id dataset(
      hdf5::check(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT),
                  what),
      H5Dclose);
  std::ifstream in(npy, std::ios::binary);
  in.seekg(header.data_offset);
  const std::int64_t block = std::max<std::int64_t>(1, kCopyBlockBytes / std::max<std::int64_t>(1, sample_bytes));
  std::vector<char> buffer;
  for (std::int64_t first = 0; first < n; first += block) {
    const std::int64_t count = std::min(block, n - first);
    buffer.resize(static_cast<std::size_t>(count * sample_bytes));
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    DPT_CHECK(in.gcount() == static_cast<std::streamsize>(buffer.size()), "reading ", npy, " failed at sample ",
              first, ": the file changed or the disk failed");
    std::vector<hsize_t> start(shape.size(), 0);
    std::vector<hsize_t> counts = shape;
    start[0] = static_cast<hsize_t>(first);
    counts[0] = static_cast<hsize_t>(count);
    hdf5::check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, counts.data(), nullptr), what);
    const hdf5::Id memory(hdf5::check(H5Screate_simple(static_cast<int>(counts.size()), counts.data(), nullptr), what),
                          H5Sclose);
    hdf5::check(H5Dwrite(dataset.get(), type.get(), memory.get(), space.get(), H5P_DEFAULT, buffer.data()), what);
  }
}

}  // namespace

void import_npy(const std::string& inputs_npy, const std::string& targets_npy, const std::string& out_path,
                const std::string& inputs_name, const std::string& targets_name) {
  const NpyHeader inputs = read_npy_header(inputs_npy);
  const NpyHeader targets = read_npy_header(targets_npy);
  DPT_CHECK(targets.shape.size() == 1 && (targets.descr[1] == 'u' || targets.descr[1] == 'i'), ".npy file ",
            targets_npy, " holds ", targets.descr, " ", hdf5::shape_string(targets.shape),
            "; targets must be 1-D integer class labels [N]");
  DPT_CHECK(inputs.shape[0] == targets.shape[0] && inputs.shape[0] > 0, inputs_npy, " holds ", inputs.shape[0],
            " samples but ", targets_npy, " holds ", targets.shape[0], ": use the inputs and targets of one split");
  hdf5::write_file_atomically(out_path, [&](hid_t file) {
    copy_array(file, inputs_npy, inputs, inputs_name, out_path);
    copy_array(file, targets_npy, targets, targets_name, out_path);
  });
}

}  // namespace dpt::data
