// main() of the multi-rank tests: starts MPI through dpt::Runtime, lets only rank 0 print, agrees on the result.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/import_idx.h"
#include "mpi_test_env.h"

namespace dpt::testing {
namespace {

Runtime* g_runtime = nullptr;
std::string g_scratch;

void write_be32(std::ofstream& out, std::uint32_t v) {
  const unsigned char bytes[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                  static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  out.write(reinterpret_cast<const char*>(bytes), 4);
}

}  // namespace

const Runtime& runtime() { return *g_runtime; }
const std::string& scratch_dir() { return g_scratch; }

std::string make_dataset(const std::string& name, int n) {
  const std::string images = g_scratch + "/" + name + "-images.idx";
  const std::string labels = g_scratch + "/" + name + "-labels.idx";
  const std::string out = g_scratch + "/" + name + ".h5";
  if (runtime().is_main() && !std::filesystem::exists(out)) {
    std::mt19937 rng(1234);
    std::ofstream img(images, std::ios::binary), lab(labels, std::ios::binary);
    write_be32(img, 0x00000803);
    write_be32(img, static_cast<std::uint32_t>(n));
    write_be32(img, 28);
    write_be32(img, 28);
    write_be32(lab, 0x00000801);
    write_be32(lab, static_cast<std::uint32_t>(n));
    for (int i = 0; i < n; ++i) {
      // The class is visible as a bright row band, so models learn it within a few steps.
      const int label = static_cast<int>(rng() % 10);
      for (int p = 0; p < 28 * 28; ++p) {
        const bool band = (p / 28) / 3 == label;
        const auto value = static_cast<char>(band ? 200 + rng() % 56 : rng() % 80);
        img.put(value);
      }
      lab.put(static_cast<char>(label));
    }
    img.close();
    lab.close();
    data::import_idx(images, labels, out);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

}  // namespace dpt::testing

int main(int argc, char** argv) {
  dpt::Runtime runtime(argc, argv);
  dpt::testing::g_runtime = &runtime;
  runtime.configure(dpt::RuntimeOptions{1, false});
  ::testing::InitGoogleTest(&argc, argv);
  if (!runtime.is_main()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }

  char path[4096] = {0};
  if (runtime.is_main()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "dptrain-mpi-XXXXXX").string();
    std::snprintf(path, sizeof(path), "%s", pattern.c_str());
    if (!mkdtemp(path)) return 2;
  }
  MPI_Bcast(path, sizeof(path), MPI_CHAR, 0, MPI_COMM_WORLD);
  dpt::testing::g_scratch = path;

  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  if (runtime.is_main()) std::filesystem::remove_all(path);
  return any_failed;
}
