// write_synthetic and import_text: tensors made in memory, one HDF5 dataset each.
#include "data/synthetic.h"

#include <fstream>
#include <iterator>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/check.h"
#include "data/hdf5_file.h"

namespace dpt::data {
namespace {

// Rows per HDF5 chunk: whole samples, about 1 MiB.
std::int64_t chunk_rows(const at::Tensor& t) {
  const auto row_bytes = std::max<std::int64_t>(1, static_cast<std::int64_t>(t.nbytes()) / std::max<std::int64_t>(1, t.size(0)));
  return std::max<std::int64_t>(1, (std::int64_t{1} << 20) / row_bytes);
}

void write_tensor(hid_t file, const std::string& name, const at::Tensor& t, const std::string& path) {
  const at::Tensor c = t.contiguous();
  const bool is_float = c.scalar_type() == at::kFloat;
  DPT_CHECK(is_float || c.scalar_type() == at::kByte, "write_tensor: ", name, " must be float32 or uint8");
  hdf5::write_dataset(file, name, c.sizes().vec(), is_float ? H5T_IEEE_F32LE : H5T_STD_U8LE,
                      is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, c.data_ptr(), path, chunk_rows(c));
}

void write_pair(const at::Tensor& inputs, const at::Tensor& labels, const std::string& out_path) {
  const auto lock = hdf5::lock_library();
  hdf5::quiet_errors();
  hdf5::write_file_atomically(out_path, [&](hid_t file) {
    write_tensor(file, "inputs", inputs, out_path);
    write_tensor(file, "labels", labels, out_path);
  });
}

}  // namespace

void write_synthetic(const SynthOptions& o, const std::string& out_path) {
  DPT_CHECK(o.samples > 0, "data synth: --samples ", o.samples, " must be positive");
  at::Generator generator = at::detail::createCPUGenerator(o.seed);
  if (o.vocab > 0) {
    DPT_CHECK(o.vocab <= 256, "data synth: --vocab ", o.vocab, " tokens do not fit the uint8 datasets: use at most 256");
    DPT_CHECK(o.context > 0, "data synth: --context ", o.context, " must be positive");
    const at::Tensor tokens = at::randint(o.vocab, {o.samples, o.context + 1}, generator, at::kByte);
    write_pair(tokens.narrow(1, 0, o.context), tokens.narrow(1, 1, o.context), out_path);
    return;
  }
  DPT_CHECK(!o.shape.empty(), "data synth: --shape needs at least one dimension, e.g. 3,32,32");
  for (const auto d : o.shape) DPT_CHECK(d > 0, "data synth: --shape dimensions must be positive");
  DPT_CHECK(o.classes > 0 && o.classes <= 256, "data synth: --classes ", o.classes, " must be in 1..256");
  DPT_CHECK(o.dtype == "float32" || o.dtype == "uint8", "data synth: --dtype ", o.dtype, ": use float32 or uint8");
  std::vector<std::int64_t> dims{o.samples};
  dims.insert(dims.end(), o.shape.begin(), o.shape.end());
  const at::Tensor inputs = o.dtype == "uint8" ? at::randint(256, dims, generator, at::kByte)
                                               : at::normal(0.0, 1.0, dims, generator);
  write_pair(inputs, at::randint(o.classes, {o.samples}, generator, at::kByte), out_path);
}

std::int64_t import_text(const std::vector<std::string>& files, const std::string& out_path, std::int64_t context,
                         std::int64_t stride) {
  DPT_CHECK(context > 0 && stride > 0, "data import-text: --context and --stride must be positive");
  std::vector<std::uint8_t> bytes;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    DPT_CHECK(in, "data import-text: cannot read ", path, ": check the path and its permissions");
    bytes.insert(bytes.end(), std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto total = static_cast<std::int64_t>(bytes.size());
  DPT_CHECK(total > context, "data import-text: the ", files.size(), " file(s) hold ", total, " bytes, fewer than ",
            "one window of --context ", context, " + 1: give more text or a shorter context");
  const std::int64_t n = (total - context - 1) / stride + 1;
  const at::Tensor all = at::from_blob(bytes.data(), {total}, at::kByte);
  const at::Tensor windows = all.unfold(0, context + 1, stride).narrow(0, 0, n);
  write_pair(windows.narrow(1, 0, context), windows.narrow(1, 1, context), out_path);
  return n;
}

}  // namespace dpt::data
