// data_loader: a shuffled epoch through the Loader vs one sequential pass over the same HDF5 file vs h5py reading
// the same shuffled batches with fancy indexing, all in one run, on a generated file (uint8 samples [3, 64, 64]).
// Every pass starts with the file's pages dropped from the OS page cache (posix_fadvise), so the file is read from
// disk as a dataset larger than memory would be.
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "data/hdf5_source.h"
#include "data/loader.h"
#include "data/sampler.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr hsize_t kSampleShape[3] = {3, 64, 64};
constexpr std::int64_t kSampleBytes = 3 * 64 * 64;

struct Options {
  std::string dir = "/tmp/dptrain-bench-data";
  double gb = 1.0;
  std::int64_t batch = 256;
  std::int64_t h5py_batches = 30;
  bool keep = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&] {
      DPT_CHECK(i + 1 < argc, arg, " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--dir") o.dir = value();
    else if (arg == "--gb") o.gb = std::stod(value());
    else if (arg == "--batch") o.batch = std::stoll(value());
    else if (arg == "--h5py-batches") o.h5py_batches = std::stoll(value());
    else if (arg == "--keep") o.keep = true;
    else DPT_THROW("unknown argument ", arg, "; usage: data_loader [--dir D] [--gb 1.0] [--batch 256] "
                   "[--h5py-batches 100] [--keep]");
  }
  return o;
}

// images uint8 [n, 3, 64, 64] in uncompressed chunks of about 1 MiB (as `dptrain data import-npy` writes), labels
// uint8 [n]; pseudo-random bytes written in 64 MiB blocks, then fsync'ed so that the pages can be dropped.
void generate(const std::string& path, std::int64_t n) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  DPT_CHECK(file >= 0, "cannot create ", path);
  const hsize_t dims[4] = {static_cast<hsize_t>(n), kSampleShape[0], kSampleShape[1], kSampleShape[2]};
  const hsize_t chunk[4] = {static_cast<hsize_t>((1 << 20) / kSampleBytes), kSampleShape[0], kSampleShape[1],
                            kSampleShape[2]};
  const hid_t space = H5Screate_simple(4, dims, nullptr);
  const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(create, 4, chunk);
  const hid_t images = H5Dcreate2(file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, create, H5P_DEFAULT);
  const std::int64_t block = (64 << 20) / kSampleBytes;
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(block * kSampleBytes));
  std::uint32_t state = 12345;
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(n));
  for (auto& label : labels) label = static_cast<std::uint8_t>((state = state * 1664525u + 1013904223u) >> 28);
  for (std::int64_t first = 0; first < n; first += block) {
    const std::int64_t count = std::min(block, n - first);
    for (std::size_t i = 0; i < static_cast<std::size_t>(count * kSampleBytes); i += 4) {
      state = state * 1664525u + 1013904223u;
      std::memcpy(&buffer[i], &state, 4);
    }
    const hsize_t start[4] = {static_cast<hsize_t>(first), 0, 0, 0};
    const hsize_t counts[4] = {static_cast<hsize_t>(count), kSampleShape[0], kSampleShape[1], kSampleShape[2]};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, counts, nullptr);
    const hid_t memory = H5Screate_simple(4, counts, nullptr);
    DPT_CHECK(H5Dwrite(images, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, buffer.data()) >= 0, "write failed");
    H5Sclose(memory);
  }
  const hsize_t label_dims[1] = {static_cast<hsize_t>(n)};
  const hid_t label_space = H5Screate_simple(1, label_dims, nullptr);
  const hid_t label_set = H5Dcreate2(file, "labels", H5T_STD_U8LE, label_space, H5P_DEFAULT, H5P_DEFAULT,
                                     H5P_DEFAULT);
  H5Dwrite(label_set, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
  H5Dclose(label_set);
  H5Sclose(label_space);
  H5Dclose(images);
  H5Pclose(create);
  H5Sclose(space);
  DPT_CHECK(H5Fclose(file) >= 0, "cannot finish ", path, " (disk full?)");
}

// Drops the file's clean pages from the page cache, so the next pass reads from disk.
void drop_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  DPT_CHECK(fd >= 0, "cannot open ", path);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One pass over the images in file order, 64 MiB hyperslabs, no conversion: the disk's and HDF5's best case.
double sequential_pass(const std::string& path, std::int64_t n) {
  const auto start = Clock::now();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
  const hid_t space = H5Dget_space(images);
  const std::int64_t block = (64 << 20) / kSampleBytes;
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(block * kSampleBytes));
  for (std::int64_t first = 0; first < n; first += block) {
    const hsize_t start_at[4] = {static_cast<hsize_t>(first), 0, 0, 0};
    const hsize_t counts[4] = {static_cast<hsize_t>(std::min(block, n - first)), kSampleShape[0], kSampleShape[1],
                               kSampleShape[2]};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start_at, nullptr, counts, nullptr);
    const hid_t memory = H5Screate_simple(4, counts, nullptr);
    DPT_CHECK(H5Dread(images, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, buffer.data()) >= 0, "read failed");
    H5Sclose(memory);
  }
  H5Sclose(space);
  H5Dclose(images);
  H5Fclose(file);
  return seconds_since(start);
}

// A shuffled epoch through the Loader (one rank, prefetch 2, uint8 -> normalised float32 as in training).
double loader_epoch(const std::string& path, std::int64_t batch, std::int64_t* samples) {
  const auto start = Clock::now();
  auto source = std::make_shared<dpt::data::Hdf5Source>(path, "images", "labels");
  dpt::data::Sampler sampler(source->size(), batch, 0, 1, 7, true);
  dpt::data::Loader loader(source, sampler, dpt::data::Normalization{1.0 / 255, 0.5, 0.25}, 2);
  *samples = 0;
  while (auto b = loader.next()) *samples += b->targets.size(0);
  return seconds_since(start);
}

struct Row {
  std::string name;
  std::int64_t samples;
  double seconds;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    fs::create_directories(o.dir);
    const std::string path = (fs::path(o.dir) / "bench.h5").string();
    const std::string order_path = (fs::path(o.dir) / "order.bin").string();
    const auto n = static_cast<std::int64_t>(o.gb * 1e9 / kSampleBytes);
    std::cout << "generating " << path << ": " << n << " samples of uint8 [3,64,64] ("
              << std::setprecision(3) << static_cast<double>(n * kSampleBytes) / 1e9 << " GB), 1 MiB chunks\n";
    const auto gen_start = Clock::now();
    generate(path, n);
    std::cout << "generated in " << std::fixed << std::setprecision(1) << seconds_since(gen_start) << " s\n";
    {
      const auto order = dpt::data::epoch_order(7, 0, n, true);
      std::ofstream(order_path, std::ios::binary)
          .write(reinterpret_cast<const char*>(order.data()), static_cast<std::streamsize>(order.size() * 8));
    }

    std::vector<Row> rows;
    drop_page_cache(path);
    rows.push_back({"sequential pass (64 MiB hyperslabs)", n, sequential_pass(path, n)});
    drop_page_cache(path);
    std::int64_t loader_samples = 0;
    const double loader_seconds = loader_epoch(path, o.batch, &loader_samples);
    rows.push_back({"dptrain Loader, shuffled epoch", loader_samples, loader_seconds});
    drop_page_cache(path);
    const std::string command = "/usr/bin/python3 " + std::string(DPTRAIN_SOURCE_DIR) + "/bench/data_loader_h5py.py " +
                                path + " " + order_path + " " + std::to_string(o.batch) + " " +
                                std::to_string(o.h5py_batches);
    const std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
    long long h5py_samples = 0;
    double h5py_seconds = 0;
    DPT_CHECK(pipe && std::fscanf(pipe.get(), "%lld %lf", &h5py_samples, &h5py_seconds) == 2,
              "the h5py baseline failed: ", command);
    rows.push_back({"h5py fancy indexing, same shuffled batches", h5py_samples, h5py_seconds});

    const auto rate = [](const Row& r) { return static_cast<double>(r.samples * kSampleBytes) / r.seconds / 1e6; };
    std::cout << "\n| reader | samples | seconds | MB/s | x sequential | x h5py |\n|---|---:|---:|---:|---:|---:|\n";
    for (const Row& r : rows) {
      std::cout << "| " << r.name << " | " << r.samples << " | " << std::setprecision(2) << r.seconds << " | "
                << std::setprecision(0) << rate(r) << " | " << std::setprecision(2) << rate(r) / rate(rows[0])
                << " | " << rate(r) / rate(rows[2]) << " |\n";
    }
    std::cout << "\nbatch " << o.batch << " per step; h5py timed on its first " << h5py_samples
              << " samples of the same order; every pass starts with the file dropped from the page cache\n";
    if (!o.keep) fs::remove_all(o.dir);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "data_loader: error: " << e.what() << "\n";
    return 1;
  }
}
