// IDX import: gzip and raw IDX round-trip into HDF5, bad files are rejected, directory import is idempotent.
#include "data/import_idx.h"

#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/hdf5_source.h"

namespace fs = std::filesystem;

namespace dpt::data::test {

fs::path fresh_test_dir();  // defined in hdf5_source_test.cpp

namespace {

// An IDX file's bytes: magic 0 0 type ndims, big-endian dims, then value (i * 7 + salt) % 256 for element i.
std::string idx_bytes(const std::vector<std::uint32_t>& dims, int salt, std::uint8_t type = 0x08) {
  std::string bytes{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  std::size_t count = 1;
  for (const auto dim : dims) {
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>((dim >> shift) & 0xFF));
    count *= dim;
  }
  for (std::size_t i = 0; i < count; ++i) bytes.push_back(static_cast<char>((i * 7 + salt) % 256));
  return bytes;
}

void write_raw(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gzip(const fs::path& path, const std::string& bytes) {
  const gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(file);
}

std::string read_error(const fs::path& path) {
  try {
    read_idx(path.string());
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

// Writes the four standard Fashion-MNIST names with 5 train and 3 test images of 3x4 pixels.
void write_idx_dir(const fs::path& dir) {
  write_gzip(dir / "train-images-idx3-ubyte.gz", idx_bytes({5, 3, 4}, 1));
  write_gzip(dir / "train-labels-idx1-ubyte.gz", idx_bytes({5}, 2));
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({3, 3, 4}, 3));
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({3}, 4));
}

TEST(ReadIdx, GzipAndRawRoundTripValuesAndShape) {
  const fs::path dir = fresh_test_dir();
  const std::string bytes = idx_bytes({4, 2, 3}, 5);
  write_raw(dir / "raw-idx3-ubyte", bytes);
  write_gzip(dir / "gz-idx3-ubyte.gz", bytes);
  for (const auto& name : {"raw-idx3-ubyte", "gz-idx3-ubyte.gz"}) {
    const IdxArray array = read_idx((dir / name).string());
    EXPECT_EQ(array.dims, (std::vector<std::int64_t>{4, 2, 3})) << name;
    ASSERT_EQ(array.data.size(), 24u) << name;
    for (std::size_t i = 0; i < array.data.size(); ++i) EXPECT_EQ(array.data[i], (i * 7 + 5) % 256) << name;
  }
}

TEST(ReadIdx, BadMagicTypeOrSizeIsAnError) {
  const fs::path dir = fresh_test_dir();
  std::string bad_magic = idx_bytes({2}, 0);
  bad_magic[0] = 'P';
  write_raw(dir / "magic", bad_magic);
  EXPECT_NE(read_error(dir / "magic").find("not an IDX file"), std::string::npos) << read_error(dir / "magic");

  write_raw(dir / "float", idx_bytes({2}, 0, 0x0D));
  EXPECT_NE(read_error(dir / "float").find("element type 0xd"), std::string::npos) << read_error(dir / "float");

  const std::string good = idx_bytes({10, 4, 4}, 0);
  write_raw(dir / "truncated", good.substr(0, good.size() - 3));
  EXPECT_NE(read_error(dir / "truncated").find("truncated"), std::string::npos) << read_error(dir / "truncated");

  write_gzip(dir / "full.gz", good);
  const auto gz_size = fs::file_size(dir / "full.gz");
  std::ifstream in(dir / "full.gz", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_raw(dir / "truncated.gz", gz.substr(0, gz_size / 2));
  EXPECT_NE(read_error(dir / "truncated.gz").find("truncated"), std::string::npos) << read_error(dir / "truncated.gz");

  write_raw(dir / "header", std::string{'\0', '\0', '\x08', '\x03', '\0'});
  EXPECT_NE(read_error(dir / "header").find("broken header"), std::string::npos);
  EXPECT_NE(read_error(dir / "absent").find("does not exist"), std::string::npos);
}

TEST(ImportIdx, WritesChunkedHdf5ThatReadsBackExactly) {
  const fs::path dir = fresh_test_dir();
  write_gzip(dir / "images.gz", idx_bytes({5, 3, 4}, 1));
  write_raw(dir / "labels", idx_bytes({5}, 2));
  const std::string out = (dir / "out" / "train.h5").string();
  import_idx((dir / "images.gz").string(), (dir / "labels").string(), out);
  EXPECT_FALSE(fs::exists(out + ".tmp." + std::to_string(::getpid())));

  Hdf5Source source(out, "images", "labels");
  EXPECT_EQ(source.describe(), out + " (images uint8 [5,3,4], labels uint8 [5])");
  const SampleBatch batch = source.read_sorted({0, 1, 2, 3, 4});
  const auto images = batch.inputs.reshape({-1});
  for (std::int64_t i = 0; i < 60; ++i) EXPECT_EQ(images[i].item<std::uint8_t>(), (i * 7 + 1) % 256);
  for (std::int64_t i = 0; i < 5; ++i) EXPECT_EQ(batch.targets[i].item<std::int64_t>(), (i * 7 + 2) % 256);

  const std::string report = inspect_hdf5(out);
  EXPECT_NE(report.find("/images  uint8 [5,3,4]  chunks [5,3,4]  compression none  samples 5"), std::string::npos)
      << report;
  EXPECT_NE(report.find("/labels  uint8 [5]"), std::string::npos) << report;
}

TEST(ImportIdx, MismatchedCountsOrShapesAreErrorsAndLeaveNoFile) {
  const fs::path dir = fresh_test_dir();
  write_raw(dir / "images", idx_bytes({5, 3, 4}, 1));
  write_raw(dir / "labels", idx_bytes({4}, 2));
  const std::string out = (dir / "train.h5").string();
  try {
    import_idx((dir / "images").string(), (dir / "labels").string(), out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("holds 5 images but"), std::string::npos) << e.message();
  }
  EXPECT_THROW(import_idx((dir / "labels").string(), (dir / "labels").string(), out), Error);
  EXPECT_FALSE(fs::exists(out));
}

TEST(ImportIdxDir, ImportsBothSplitsOnceAndAgainWhenInputsChange) {
  const fs::path dir = fresh_test_dir();
  write_idx_dir(dir);
  const fs::path out = dir / "hdf5";
  const auto written = import_idx_dir(dir.string(), out.string());
  EXPECT_EQ(written, (std::vector<std::string>{(out / "train.h5").string(), (out / "test.h5").string()}));
  EXPECT_EQ(Hdf5Source((out / "train.h5").string(), "images", "labels").size(), 5);
  EXPECT_EQ(Hdf5Source((out / "test.h5").string(), "images", "labels").size(), 3);

  EXPECT_TRUE(import_idx_dir(dir.string(), out.string()).empty());
  const auto later = fs::last_write_time(out / "test.h5") + std::chrono::seconds(5);
  fs::last_write_time(dir / "t10k-labels-idx1-ubyte.gz", later);
  EXPECT_EQ(import_idx_dir(dir.string(), out.string()), (std::vector<std::string>{(out / "test.h5").string()}));

  fs::remove(dir / "t10k-images-idx3-ubyte.gz");
  fs::remove(out / "test.h5");
  try {
    import_idx_dir(dir.string(), out.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("t10k-images-idx3-ubyte.gz"), std::string::npos) << e.message();
  }
}

TEST(InspectHdf5, RejectsMissingAndNonHdf5Files) {
  const fs::path dir = fresh_test_dir();
  write_raw(dir / "plain.txt", "hello");
  EXPECT_THROW(inspect_hdf5((dir / "plain.txt").string()), Error);
  EXPECT_THROW(inspect_hdf5((dir / "absent.h5").string()), Error);
}

}  // namespace
}  // namespace dpt::data::test
