// IDX import: validated IDX parsing (gzip or raw via zlib), atomic HDF5 writing, and the HDF5 file report.
#include "data/import_idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <sstream>

#include "core/check.h"
#include "data/hdf5_file.h"

namespace dpt::data {
namespace fs = std::filesystem;
namespace {

std::vector<std::uint8_t> read_gzip_or_raw(const std::string& path) {
  DPT_CHECK(fs::is_regular_file(path), "IDX file ", path, " does not exist: download it or fix the path");
  // gzread passes raw (uncompressed) files through unchanged, so one reader serves both.
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  DPT_CHECK(file != nullptr, "cannot open IDX file ", path, ": check its permissions");
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t> block(1 << 20);
  int got = 0;
  while ((got = gzread(file.get(), block.data(), static_cast<unsigned>(block.size()))) > 0) {
    bytes.insert(bytes.end(), block.begin(), block.begin() + got);
  }
  int status = Z_OK;
  const char* message = gzerror(file.get(), &status);
  DPT_CHECK(got == 0 && status == Z_OK, "IDX file ", path, " is corrupt or truncated (zlib: ", message,
            "): download it again");
  return bytes;
}

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

void write_uint8_dataset(hid_t file, const std::string& name, const std::vector<std::int64_t>& dims,
                         const std::vector<std::uint8_t>& data, const std::string& path) {
  hdf5::write_dataset(file, name, dims, H5T_STD_U8LE, H5T_NATIVE_UINT8, data.data(), path, kIdxChunkSamples);
}

// Finds `stem`.gz or `stem` in dir.
std::string find_idx(const fs::path& dir, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    if (fs::is_regular_file(dir / name)) return (dir / name).string();
  }
  DPT_THROW("IDX directory ", dir.string(), " has neither ", stem, ".gz nor ", stem,
            ": download the dataset's four IDX files into it");
}

bool up_to_date(const fs::path& out, const std::vector<std::string>& inputs) {
  if (!fs::exists(out)) return false;
  const auto written = fs::last_write_time(out);
  return std::all_of(inputs.begin(), inputs.end(),
                     [&](const std::string& input) { return fs::last_write_time(input) < written; });
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_gzip_or_raw(path);
  DPT_CHECK(bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0, "IDX file ", path,
            " does not start with the IDX magic (0x00 0x00 type ndims): it is not an IDX file");
  DPT_CHECK(bytes[2] == 0x08, "IDX file ", path, " holds element type 0x", std::hex, int{bytes[2]}, std::dec,
            "; only 0x08 (unsigned byte) is supported");
  const std::size_t ndims = bytes[3];
  const std::size_t header = 4 + 4 * ndims;
  DPT_CHECK(ndims >= 1 && bytes.size() >= header, "IDX file ", path, " has a broken header (", ndims,
            " dimensions, ", bytes.size(), " bytes): download it again");
  IdxArray array;
  std::int64_t count = 1;
  for (std::size_t i = 0; i < ndims; ++i) {
    array.dims.push_back(big_endian_u32(&bytes[4 + 4 * i]));
    count *= array.dims.back();
  }
  const auto payload = static_cast<std::int64_t>(bytes.size() - header);
  DPT_CHECK(payload == count, "IDX file ", path, " has shape ", hdf5::shape_string(array.dims), " (", count,
            " bytes of data) but holds ", payload, " bytes: it is truncated or corrupt; download it again");
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return array;
}

void import_idx(const std::string& images_path, const std::string& labels_path, const std::string& out_path) {
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  DPT_CHECK(images.dims.size() == 3, "IDX file ", images_path, " has shape ", hdf5::shape_string(images.dims),
            "; images must be [N, rows, cols] (an idx3 file)");
  DPT_CHECK(labels.dims.size() == 1, "IDX file ", labels_path, " has shape ", hdf5::shape_string(labels.dims),
            "; labels must be [N] (an idx1 file)");
  DPT_CHECK(images.dims[0] == labels.dims[0] && images.dims[0] > 0, images_path, " holds ", images.dims[0],
            " images but ", labels_path, " holds ", labels.dims[0],
            " labels: use the images and labels of the same split");

  hdf5::write_file_atomically(out_path, [&](hid_t file) {
    write_uint8_dataset(file, "images", images.dims, images.data, out_path);
    write_uint8_dataset(file, "labels", labels.dims, labels.data, out_path);
  });
}

std::vector<std::string> import_idx_dir(const std::string& dir, const std::string& out_dir) {
  DPT_CHECK(fs::is_directory(dir), "IDX directory ", dir,
            " does not exist: pass the folder holding train-images-idx3-ubyte.gz and the other IDX files");
  fs::create_directories(out_dir);
  struct Split {
    const char* prefix;
    const char* output;
  };
  std::vector<std::string> written;
  for (const Split& split : {Split{"train", "train.h5"}, Split{"t10k", "test.h5"}}) {
    const std::string images = find_idx(dir, std::string(split.prefix) + "-images-idx3-ubyte");
    const std::string labels = find_idx(dir, std::string(split.prefix) + "-labels-idx1-ubyte");
    const fs::path out = fs::path(out_dir) / split.output;
    if (up_to_date(out, {images, labels})) continue;
    import_idx(images, labels, out.string());
    written.push_back(out.string());
  }
  return written;
}

std::string inspect_hdf5(const std::string& path) {
  const auto lock = hdf5::lock_library();
  const hdf5::Id file = hdf5::open_file(path, "");
  std::ostringstream out;
  const auto bytes = fs::file_size(path);
  out << path << " (";
  if (bytes < 1000000) {
    out << bytes << " bytes)\n";
  } else {
    out << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / 1e6 << " MB)\n";
  }
  const auto names = hdf5::list_datasets(file.get());
  for (const auto& name : names) {
    const hdf5::Id dataset = hdf5::open_dataset(file.get(), path, name);
    const hdf5::DatasetInfo info = hdf5::dataset_info(dataset.get());
    std::string filters;
    for (const auto& filter : info.filters) filters += (filters.empty() ? "" : "+") + filter;
    out << "  " << name << "  " << info.dtype << " " << hdf5::shape_string(info.shape) << "  "
        << (info.chunk.empty() ? "contiguous" : "chunks " + hdf5::shape_string(info.chunk)) << "  compression "
        << (filters.empty() ? "none" : filters) << "  samples "
        << (info.shape.empty() ? std::string("- (scalar)") : std::to_string(info.shape[0])) << "\n";
  }
  if (names.empty()) out << "  (no datasets)\n";
  return out.str();
}

}  // namespace dpt::data
