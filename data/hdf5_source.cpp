// Hdf5Source: validated datasets over one or many files, a chunk cache sized from the chunking, and one read per
// index run and file: pread where the samples' bytes can be located, else a hyperslab H5Dread.
#include "data/hdf5_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <numeric>

#include "core/check.h"
#include "data/hdf5_file.h"

namespace dpt::data {
namespace {

// Shuffled reads touch chunks all over the file. A cache holding the whole dataset (up to this cap per dataset and
// process, shared by the files of a source) makes each chunk load and decompress once per process instead of once
// per batch; MNIST-sized sets fit.
constexpr std::int64_t kMaxChunkCacheBytes = 64LL << 20;
// HDF5's chunk hash table wants a prime slot count about 100x the chunks that fit; the cap bounds its memory.
constexpr std::int64_t kMaxChunkCacheSlots = 1000000;
constexpr std::size_t kConversionBufferBytes = 1 << 20;
// Targets up to this size (as int64) are read whole when the source opens, instead of once per run of samples.
constexpr std::int64_t kResidentBytes = 16LL << 20;

std::int64_t next_prime(std::int64_t n) {
  const auto is_prime = [](std::int64_t k) {
    if (k < 2) return false;
    for (std::int64_t d = 2; d * d <= k; ++d) {
      if (k % d == 0) return false;
    }
    return true;
  };
  while (!is_prime(n)) ++n;
  return n;
}

std::int64_t product(const std::vector<std::int64_t>& dims, std::size_t from = 0) {
  return std::accumulate(dims.begin() + static_cast<std::ptrdiff_t>(from), dims.end(), std::int64_t{1},
                         std::multiplies<>());
}

// An access plist whose chunk cache fits the dataset, up to max_bytes; the default plist for contiguous datasets.
hdf5::Id chunk_cache_plist(const hdf5::DatasetInfo& info, std::int64_t max_bytes) {
  if (info.chunk.empty()) return hdf5::Id();
  const std::int64_t chunk_bytes = product(info.chunk) * static_cast<std::int64_t>(info.type_size);
  // The last chunk along each axis is allocated whole, so round the shape up to whole chunks.
  std::int64_t data_bytes = static_cast<std::int64_t>(info.type_size);
  for (std::size_t d = 0; d < info.shape.size(); ++d) {
    data_bytes *= (info.shape[d] + info.chunk[d] - 1) / info.chunk[d] * info.chunk[d];
  }
  // Uncompressed chunks of a dataset that does not fit: no cache. HDF5 then reads just the selected bytes of each
  // chunk; a cache would load the whole chunk for every sample of a shuffled batch and evict it before its
  // neighbours are asked for (a 1 MiB chunk per 12 KiB sample read). Compressed chunks must be inflated whole, so
  // they keep a cache.
  if (info.filters.empty() && data_bytes > max_bytes) {
    hdf5::Id plist(hdf5::check(H5Pcreate(H5P_DATASET_ACCESS), "cannot create a dataset access plist"), H5Pclose);
    hdf5::check(H5Pset_chunk_cache(plist.get(), 0, 0, 1.0), "cannot disable the chunk cache");
    return plist;
  }
  const std::int64_t cache_bytes = std::max(chunk_bytes, std::min(data_bytes, max_bytes));
  const std::int64_t slots = next_prime(std::min(100 * (cache_bytes / chunk_bytes + 1), kMaxChunkCacheSlots));
  hdf5::Id plist(hdf5::check(H5Pcreate(H5P_DATASET_ACCESS), "cannot create a dataset access plist"), H5Pclose);
  // w0 = 1: the data is read-only, so fully read chunks are the best to evict.
  hdf5::check(H5Pset_chunk_cache(plist.get(), static_cast<std::size_t>(slots), static_cast<std::size_t>(cache_bytes),
                                 1.0),
              "cannot set the chunk cache");
  return plist;
}

// How a stored type is read into memory: HDF5 converts byte order, and widens float16 (no native C type) to float32.
struct MemoryType {
  hid_t hdf5;
  at::ScalarType torch;
};

// Returns false for types the inputs cannot use (unsigned wider than 8 bits has no LibTorch 1.13 dtype).
bool input_memory_type(hid_t type, MemoryType* out) {
  const std::size_t size = H5Tget_size(type);
  if (H5Tget_class(type) == H5T_FLOAT) {
    if (size == 2 || size == 4) *out = {H5T_NATIVE_FLOAT, at::kFloat};
    if (size == 8) *out = {H5T_NATIVE_DOUBLE, at::kDouble};
    return size == 2 || size == 4 || size == 8;
  }
  if (H5Tget_class(type) != H5T_INTEGER) return false;
  if (H5Tget_sign(type) == H5T_SGN_NONE) {
    if (size == 1) *out = {H5T_NATIVE_UINT8, at::kByte};
    return size == 1;
  }
  switch (size) {
    case 1: *out = {H5T_NATIVE_INT8, at::kChar}; return true;
    case 2: *out = {H5T_NATIVE_INT16, at::kShort}; return true;
    case 4: *out = {H5T_NATIVE_INT32, at::kInt}; return true;
    case 8: *out = {H5T_NATIVE_INT64, at::kLong}; return true;
    default: return false;
  }
}

// One opened dataset plus what reads need; the file dataspace is kept and re-selected for every run.
struct Dataset {
  std::string name;
  hdf5::Id id;
  hdf5::Id file_space;
  hdf5::DatasetInfo info;
  MemoryType memory{};
  std::int64_t sample_elements = 1;
  // HDF5 callocs (and so zero-fills) a 1 MiB type conversion buffer in every H5Dread that converts, e.g. uint8
  // labels to int64; handing it our own buffer once removes that from each of the many small reads.
  // (Moving a Dataset moves the vector's heap block, so the plist's pointer stays valid.)
  std::vector<unsigned char> conversion_buffer = std::vector<unsigned char>(kConversionBufferBytes);
  hdf5::Id transfer;

  // Where whole samples lie in the file: the dataset's address (contiguous) or each chunk's (uncompressed chunks
  // spanning every axis but the first). `locatable` is false for other layouts; `direct` when the stored bytes
  // are also the memory type's, so samples can be read with pread instead of H5Dread (a few microseconds per run
  // instead of tens). `resident`: the whole dataset, read at open (targets that fit kResidentBytes).
  bool locatable = false;
  bool direct = false;
  haddr_t contiguous_address = HADDR_UNDEF;
  std::int64_t stored_sample_bytes = 0;
  at::Tensor resident;

  void find_layout(hid_t stored_type) {
    stored_sample_bytes = sample_elements * static_cast<std::int64_t>(info.type_size);
    if (info.chunk.empty()) {
      contiguous_address = H5Dget_offset(id.get());
      locatable = contiguous_address != HADDR_UNDEF;
    } else {
      locatable = info.filters.empty() && std::equal(info.chunk.begin() + 1, info.chunk.end(), info.shape.begin() + 1);
    }
    direct = locatable && H5Tequal(stored_type, memory.hdf5) > 0;
  }

  struct Extent {
    off_t offset;
    std::int64_t bytes;
  };

  // The file extents of samples [run.first, run.first + run.length) in order; false when some are not in the file
  // as plain bytes (another layout, or a chunk never written, which reads as the fill value).
  bool locate(const IndexRun& run, std::vector<Extent>* extents) const {
    extents->clear();
    if (!locatable) return false;
    if (info.chunk.empty()) {
      extents->push_back({static_cast<off_t>(contiguous_address + run.first * stored_sample_bytes),
                          run.length * stored_sample_bytes});
      return true;
    }
    const std::int64_t rows = info.chunk[0];
    std::vector<hsize_t> origin(info.shape.size(), 0);
    for (std::int64_t first = run.first, end = run.first + run.length; first < end;) {
      const std::int64_t chunk_start = first / rows * rows;
      const std::int64_t last = std::min(end, chunk_start + rows);
      origin[0] = static_cast<hsize_t>(chunk_start);
      unsigned filter_mask = 0;
      haddr_t address = HADDR_UNDEF;
      hsize_t bytes = 0;
      if (H5Dget_chunk_info_by_coord(id.get(), origin.data(), &filter_mask, &address, &bytes) < 0 ||
          address == HADDR_UNDEF) {
        return false;
      }
      extents->push_back({static_cast<off_t>(address + (first - chunk_start) * stored_sample_bytes),
                          (last - first) * stored_sample_bytes});
      first = last;
    }
    return true;
  }

  // Reads samples [run.first, run.first + run.length) into dst: from memory, with pread, or with one hyperslab
  // H5Dread.
  void read_run(const IndexRun& run, void* dst, const std::string& path, int fd) {
    if (resident.defined()) {
      const std::int64_t sample_bytes = sample_elements * static_cast<std::int64_t>(resident.element_size());
      std::memcpy(dst, static_cast<const char*>(resident.data_ptr()) + run.first * sample_bytes,
                  static_cast<std::size_t>(run.length * sample_bytes));
      return;
    }
    const std::string what = "reading samples [" + std::to_string(run.first) + ", " +
                             std::to_string(run.first + run.length) + ") of dataset '" + name + "' in " + path;
    std::vector<Extent> extents;
    if (direct && fd >= 0 && locate(run, &extents)) {
      auto* out = static_cast<char*>(dst);
      for (const Extent& extent : extents) {
        for (std::int64_t done = 0; done < extent.bytes;) {
          const ssize_t got = ::pread(fd, out + done, static_cast<std::size_t>(extent.bytes - done),
                                      extent.offset + static_cast<off_t>(done));
          DPT_CHECK(got > 0, what, ": ",
                    got == 0 ? "the file ends early (truncated); copy or import it again"
                             : std::string(std::strerror(errno)) + "; check the file and its disk");
          done += got;
        }
        out += extent.bytes;
      }
      return;
    }
    std::vector<hsize_t> start(info.shape.size(), 0);
    std::vector<hsize_t> count(info.shape.begin(), info.shape.end());
    start[0] = static_cast<hsize_t>(run.first);
    count[0] = static_cast<hsize_t>(run.length);
    hdf5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                what);
    // The memory space has the selection's shape: otherwise HDF5 maps chunks to memory element by element.
    const hdf5::Id memory_space(
        hdf5::check(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what), H5Sclose);
    hdf5::check(H5Dread(id.get(), memory.hdf5, memory_space.get(), file_space.get(), transfer.get(), dst), what);
  }
};

Dataset open_validated(hid_t file, const std::string& path, const std::string& name, bool is_targets,
                       std::int64_t max_cache_bytes) {
  Dataset dataset;
  dataset.name = name;
  hdf5::Id stored_type;
  {
    const hdf5::Id probe = hdf5::open_dataset(file, path, name);
    dataset.info = hdf5::dataset_info(probe.get());
    const hdf5::Id type(hdf5::check(H5Dget_type(probe.get()), "cannot read the type of '" + name + "' in " + path),
                        H5Tclose);
    const auto& info = dataset.info;
    const std::string where = "dataset '" + name + "' in HDF5 file " + path;
    if (is_targets) {
      DPT_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, where, " holds ", info.dtype,
                " values; targets must be integer class labels: point data targets at the label dataset");
      DPT_CHECK(!info.shape.empty(), where, " is a scalar; targets must be [N] class labels or [N, ...] (e.g. [N, T] "
                "next tokens): point data targets at the label dataset");
      dataset.memory = {H5T_NATIVE_INT64, at::kLong};
    } else {
      DPT_CHECK(input_memory_type(type.get(), &dataset.memory), where, " holds ", info.dtype,
                " values, which inputs do not support; supported: uint8, int8, int16, int32, int64, float16, "
                "float32, float64: convert the dataset");
      DPT_CHECK(!info.shape.empty(), where, " is a scalar; inputs must be [N, ...]");
    }
    DPT_CHECK(product(info.shape) > 0, where, " is empty (shape ", hdf5::shape_string(info.shape),
              "): import the data again");
    stored_type = hdf5::Id(H5Tcopy(type.get()), H5Tclose);
  }
  const hdf5::Id access = chunk_cache_plist(dataset.info, max_cache_bytes);
  dataset.id = hdf5::open_dataset(file, path, name, access.get() >= 0 ? access.get() : H5P_DEFAULT);
  dataset.file_space = hdf5::Id(hdf5::check(H5Dget_space(dataset.id.get()), "cannot read '" + name + "' in " + path),
                                H5Sclose);
  dataset.sample_elements = product(dataset.info.shape, 1);
  dataset.find_layout(stored_type.get());
  dataset.transfer = hdf5::Id(hdf5::check(H5Pcreate(H5P_DATASET_XFER), "cannot create a transfer plist"), H5Pclose);
  hdf5::check(H5Pset_buffer(dataset.transfer.get(), dataset.conversion_buffer.size(),
                            dataset.conversion_buffer.data(), nullptr),
              "cannot set the type conversion buffer");
  const std::int64_t rows = dataset.info.shape[0];
  if (is_targets &&
      rows * dataset.sample_elements * static_cast<std::int64_t>(sizeof(std::int64_t)) <= kResidentBytes) {
    at::Tensor whole = at::empty({rows * dataset.sample_elements}, at::kLong);
    dataset.read_run({0, rows}, whole.data_ptr(), path, -1);
    dataset.resident = whole;
  }
  return dataset;
}

// One file of the source: its two datasets and the global index of its first sample.
struct FilePart {
  std::string path;
  hdf5::Id file;
  Dataset inputs;
  Dataset targets;
  std::int64_t first = 0;
  // A descriptor of our own for direct reads and read-ahead hints (HDF5 keeps its own).
  std::shared_ptr<int> fd;
  int raw_fd() const { return fd ? *fd : -1; }

  std::int64_t size() const { return inputs.info.shape[0]; }
};

FilePart open_part(const std::string& path, const std::string& inputs_name, const std::string& targets_name,
                   std::int64_t max_cache_bytes) {
  FilePart part;
  part.path = path;
  part.file = hdf5::open_file(
      path, ": run `dptrain data import-idx` or `dptrain data import-npy` first, or fix data.train / data.test");
  part.inputs = open_validated(part.file.get(), path, inputs_name, false, max_cache_bytes);
  part.targets = open_validated(part.file.get(), path, targets_name, true, max_cache_bytes);
  DPT_CHECK(part.inputs.info.shape[0] == part.targets.info.shape[0], "HDF5 file ", path, ": dataset '", inputs_name,
            "' has ", part.inputs.info.shape[0], " samples but '", targets_name, "' has ",
            part.targets.info.shape[0], "; inputs and targets must have the same length");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) part.fd = std::shared_ptr<int>(new int(fd), [](int* f) { ::close(*f); delete f; });
  return part;
}

// Files of one source are concatenated, so each must hold samples the first file's model input would accept.
void check_same_samples(const FilePart& first, const FilePart& part) {
  const auto sample = [](const FilePart& p) {
    return std::vector<std::int64_t>(p.inputs.info.shape.begin() + 1, p.inputs.info.shape.end());
  };
  const auto target = [](const FilePart& p) {
    return std::vector<std::int64_t>(p.targets.info.shape.begin() + 1, p.targets.info.shape.end());
  };
  DPT_CHECK(target(part) == target(first), "dataset '", part.targets.name, "' in HDF5 file ", part.path,
            " has targets of shape ", hdf5::shape_string(target(part)), " but in ", first.path, " of shape ",
            hdf5::shape_string(target(first)), ": all files of one split must hold targets of the same shape");
  DPT_CHECK(sample(part) == sample(first), "dataset '", part.inputs.name, "' in HDF5 file ", part.path,
            " has samples of shape ", hdf5::shape_string(sample(part)), " but in ", first.path, " of shape ",
            hdf5::shape_string(sample(first)), ": all files of one split must hold samples of the same shape");
  DPT_CHECK(part.inputs.memory.torch == first.inputs.memory.torch, "dataset '", part.inputs.name, "' in HDF5 file ",
            part.path, " holds ", part.inputs.info.dtype, " but in ", first.path, " ", first.inputs.info.dtype,
            ": all files of one split must store the same dtype; convert one of them");
}

}  // namespace

struct Hdf5Source::Impl {
  std::vector<std::string> paths;
  std::vector<FilePart> parts;
  std::int64_t size = 0;
  // Read-ahead hints only pay for inputs too large to stay cached; smaller ones are in memory after one epoch.
  bool read_ahead = false;

  // The part holding global sample `index`.
  FilePart& part_of(std::int64_t index) {
    const auto after = std::upper_bound(parts.begin(), parts.end(), index,
                                        [](std::int64_t i, const FilePart& part) { return i < part.first; });
    return *(after - 1);
  }

  // fn(part, run within the part) for each contiguous run of the sorted indices; a run that crosses a file
  // boundary comes as one piece per file.
  template <typename Fn>
  void for_each_run(const std::vector<std::int64_t>& sorted_indices, Fn&& fn) {
    for (IndexRun run : contiguous_runs(sorted_indices)) {
      while (run.length > 0) {
        FilePart& part = part_of(run.first);
        const IndexRun local{run.first - part.first, std::min(run.length, part.first + part.size() - run.first)};
        fn(part, local);
        run.first += local.length;
        run.length -= local.length;
      }
    }
  }
};

Hdf5Source::Hdf5Source(const std::vector<std::string>& paths, const std::string& inputs_dataset,
                       const std::string& targets_dataset)
    : impl_(std::make_unique<Impl>()) {
  DPT_CHECK(!paths.empty(), "no HDF5 files to read: set data.train (a path or a glob) or data.train_files");
  const auto lock = hdf5::lock_library();
  impl_->paths = paths;
  const std::int64_t cache_per_dataset = kMaxChunkCacheBytes / static_cast<std::int64_t>(paths.size());
  for (const auto& path : paths) {
    impl_->parts.push_back(open_part(path, inputs_dataset, targets_dataset, cache_per_dataset));
    FilePart& part = impl_->parts.back();
    check_same_samples(impl_->parts.front(), part);
    part.first = impl_->size;
    impl_->size += part.size();
  }
  impl_->read_ahead = impl_->size * impl_->parts.front().inputs.stored_sample_bytes > kMaxChunkCacheBytes;
}

Hdf5Source::Hdf5Source(const std::string& path, const std::string& inputs_dataset, const std::string& targets_dataset)
    : Hdf5Source(std::vector<std::string>{path}, inputs_dataset, targets_dataset) {}

Hdf5Source::~Hdf5Source() = default;

std::int64_t Hdf5Source::size() const { return impl_->size; }

std::vector<std::int64_t> Hdf5Source::sample_shape() const {
  const auto& shape = impl_->parts.front().inputs.info.shape;
  return {shape.begin() + 1, shape.end()};
}

const std::vector<std::string>& Hdf5Source::files() const { return impl_->paths; }

std::string Hdf5Source::locate(std::int64_t index) const {
  for (const auto& part : impl_->parts) {
    if (index >= part.first && index < part.first + part.size()) {
      return "sample " + std::to_string(index - part.first) + " of " + part.path;
    }
  }
  return Source::locate(index);
}

SampleBatch Hdf5Source::read_sorted(const std::vector<std::int64_t>& sorted_indices) {
  const auto lock = hdf5::lock_library();
  hdf5::quiet_errors();
  check_sorted_indices(sorted_indices, size(), impl_->paths.front());
  const auto n = static_cast<std::int64_t>(sorted_indices.size());
  std::vector<std::int64_t> shape{n};
  const auto sample = sample_shape();
  shape.insert(shape.end(), sample.begin(), sample.end());
  const Dataset& first_inputs = impl_->parts.front().inputs;
  const auto& target_shape = impl_->parts.front().targets.info.shape;
  std::vector<std::int64_t> targets_shape{n};
  targets_shape.insert(targets_shape.end(), target_shape.begin() + 1, target_shape.end());
  const std::int64_t target_elements = impl_->parts.front().targets.sample_elements;
  SampleBatch batch{at::empty(shape, first_inputs.memory.torch), at::empty(targets_shape, at::kLong)};
  auto* inputs = static_cast<char*>(batch.inputs.data_ptr());
  auto* targets = batch.targets.data_ptr<std::int64_t>();
  const std::int64_t sample_bytes =
      first_inputs.sample_elements * static_cast<std::int64_t>(batch.inputs.element_size());
  impl_->for_each_run(sorted_indices, [&](FilePart& part, const IndexRun& local) {
    part.inputs.read_run(local, inputs, part.path, part.raw_fd());
    part.targets.read_run(local, targets, part.path, part.raw_fd());
    inputs += local.length * sample_bytes;
    targets += local.length * target_elements;
  });
  return batch;
}

void Hdf5Source::will_need(const std::vector<std::int64_t>& sorted_indices) {
  if (!impl_->read_ahead) return;
  // Extents are looked up under the HDF5 lock; the hints, which may block on the disk queue, are given without it.
  std::vector<std::pair<int, Dataset::Extent>> hints;
  {
    const auto lock = hdf5::lock_library();
    hdf5::quiet_errors();
    std::vector<Dataset::Extent> extents;
    impl_->for_each_run(sorted_indices, [&](FilePart& part, const IndexRun& local) {
      if (!part.fd || !part.inputs.locate(local, &extents)) return;
      for (const auto& extent : extents) hints.emplace_back(*part.fd, extent);
    });
  }
  for (const auto& [fd, extent] : hints) {
    ::posix_fadvise(fd, extent.offset, static_cast<off_t>(extent.bytes), POSIX_FADV_WILLNEED);
  }
}

std::string Hdf5Source::describe() const {
  const auto& first = impl_->parts.front();
  const auto part = [&](const Dataset& d, std::int64_t n) {
    auto shape = d.info.shape;
    shape[0] = n;
    return d.name + " " + d.info.dtype + " " + hdf5::shape_string(shape);
  };
  const std::string files = impl_->parts.size() == 1
                                ? first.path
                                : std::to_string(impl_->parts.size()) + " files " + first.path + " ... " +
                                      impl_->parts.back().path;
  return files + " (" + part(first.inputs, size()) + ", " + part(first.targets, size()) + ")";
}

}  // namespace dpt::data
