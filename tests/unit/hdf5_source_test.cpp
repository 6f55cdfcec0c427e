// Hdf5Source: values and dtypes read back exactly, runs across chunks, and a clear error for each bad input.
#include "data/hdf5_source.h"

#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <functional>
#include <numeric>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/import_idx.h"
#include "hdf5_test_file.h"
#include "python_required.h"

namespace fs = std::filesystem;

namespace dpt::data::test {

// A new empty directory for the running test (also used by import_idx_test.cpp, in the same binary).
fs::path fresh_test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(::testing::TempDir()) / "dptrain_data_test" /
                       (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

namespace {

// The dpt::Error message that constructing a source over `path` raises ("" when it does not throw).
std::string open_error(const std::string& path, const std::string& inputs = "images",
                       const std::string& targets = "labels") {
  try {
    Hdf5Source source(path, inputs, targets);
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

class Hdf5SourceTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir(); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // images int16 [20, 3] (sample i holds 3i, 3i+1, 3i+2) in chunks of 4 samples, gzip; labels int32 [20] = 100+i.
  std::string standard_file() {
    const std::string path = file("standard.h5");
    write_file(path, {{"images", H5T_STD_I16LE, H5T_NATIVE_INT16, {20, 3}, images_.data(), {4, 3}, 4},
                      {"labels", H5T_STD_I32BE, H5T_NATIVE_INT32, {20}, labels_.data(), {4}}});
    return path;
  }

  fs::path dir_;
  std::vector<std::int16_t> images_ = iota_values<std::int16_t>(60, 0);
  std::vector<std::int32_t> labels_ = iota_values<std::int32_t>(20, 100);
};

TEST_F(Hdf5SourceTest, ReadsValuesOfSortedIndicesAcrossChunks) {
  Hdf5Source source(standard_file(), "images", "labels");
  EXPECT_EQ(source.size(), 20);
  EXPECT_EQ(source.sample_shape(), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(source.describe(), file("standard.h5") + " (images int16 [20,3], labels int32 [20])");
  const std::vector<std::int64_t> indices{0, 2, 3, 4, 5, 11, 17, 18, 19};
  const SampleBatch batch = source.read_sorted(indices);
  ASSERT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{9, 3}));
  EXPECT_EQ(batch.inputs.scalar_type(), at::kShort);
  EXPECT_EQ(batch.targets.scalar_type(), at::kLong);
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const auto i = static_cast<std::int64_t>(indices[k]);
    EXPECT_EQ(batch.targets[static_cast<std::int64_t>(k)].item<std::int64_t>(), 100 + i);
    for (std::int64_t j = 0; j < 3; ++j) {
      EXPECT_EQ(batch.inputs[static_cast<std::int64_t>(k)][j].item<std::int16_t>(), 3 * i + j);
    }
  }
  EXPECT_EQ(source.read_sorted({}).inputs.sizes(), (std::vector<std::int64_t>{0, 3}));
}

TEST_F(Hdf5SourceTest, ContiguousRunsGroupConsecutiveIndices) {
  const auto runs = contiguous_runs({1, 2, 3, 7, 9, 10});
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].first, 1);
  EXPECT_EQ(runs[0].length, 3);
  EXPECT_EQ(runs[1].first, 7);
  EXPECT_EQ(runs[1].length, 1);
  EXPECT_EQ(runs[2].first, 9);
  EXPECT_EQ(runs[2].length, 2);
}

TEST_F(Hdf5SourceTest, ReadsEverySupportedInputDtype) {
  const auto u8 = iota_values<std::uint8_t>(8, 250);
  const auto i8 = iota_values<std::int8_t>(8, -4);
  const auto i64 = iota_values<std::int64_t>(8, -(1LL << 40));
  const auto f32 = iota_values<float>(8, -1.5f);
  const auto f64 = iota_values<double>(8, 1e300);
  const auto labels = iota_values<std::uint64_t>(4, 7);
  const std::string path = file("dtypes.h5");
  write_file(path, {{"u8", H5T_STD_U8LE, H5T_NATIVE_UINT8, {4, 2}, u8.data()},
                    {"i8", H5T_STD_I8LE, H5T_NATIVE_INT8, {4, 2}, i8.data()},
                    {"i64", H5T_STD_I64BE, H5T_NATIVE_INT64, {4, 2}, i64.data(), {3, 2}},
                    {"f32", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, {4, 2}, f32.data()},
                    {"f64", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {4, 2}, f64.data(), {1, 1}, 9},
                    {"labels", H5T_STD_U64LE, H5T_NATIVE_UINT64, {4}, labels.data()}});
  const auto read_all = [&](const std::string& name) {
    return Hdf5Source(path, name, "labels").read_sorted({0, 1, 2, 3});
  };
  const auto expect_values = [](const at::Tensor& actual, const auto& expected, at::ScalarType dtype) {
    EXPECT_EQ(actual.scalar_type(), dtype);
    const auto flat = actual.reshape({-1}).to(at::kDouble);
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(flat[static_cast<std::int64_t>(i)].template item<double>(), static_cast<double>(expected[i]));
    }
  };
  expect_values(read_all("u8").inputs, u8, at::kByte);
  expect_values(read_all("i8").inputs, i8, at::kChar);
  expect_values(read_all("i64").inputs, i64, at::kLong);
  expect_values(read_all("f32").inputs, f32, at::kFloat);
  expect_values(read_all("f64").inputs, f64, at::kDouble);
  expect_values(read_all("u8").targets, labels, at::kLong);
}

TEST_F(Hdf5SourceTest, RejectsUnsortedOrOutOfRangeIndices) {
  Hdf5Source source(standard_file(), "images", "labels");
  EXPECT_THROW(source.read_sorted({3, 2}), Error);
  EXPECT_THROW(source.read_sorted({4, 4}), Error);
  EXPECT_THROW(source.read_sorted({20}), Error);
  EXPECT_THROW(source.read_sorted({-1}), Error);
}

TEST_F(Hdf5SourceTest, MissingFileSaysHowToCreateIt) {
  const std::string message = open_error(file("absent.h5"));
  EXPECT_NE(message.find(file("absent.h5") + " does not exist"), std::string::npos) << message;
  EXPECT_NE(message.find("dptrain data import-idx"), std::string::npos) << message;
}

TEST_F(Hdf5SourceTest, NonHdf5AndTruncatedFilesAreRejected) {
  std::ofstream(file("text.h5")) << "just some text, not HDF5\n";
  EXPECT_NE(open_error(file("text.h5")).find(file("text.h5") + " is not an HDF5 file"), std::string::npos)
      << open_error(file("text.h5"));

  const std::string path = standard_file();
  fs::resize_file(path, fs::file_size(path) / 2);
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_EQ(message.find("HDF5_USE_FILE_LOCKING"), std::string::npos) << message;
}

TEST_F(Hdf5SourceTest, MissingDatasetListsTheDatasetsThatExist) {
  const std::string path = standard_file();
  const std::string message = open_error(path, "pixels");
  EXPECT_NE(message.find(path + " has no dataset 'pixels'"), std::string::npos) << message;
  EXPECT_NE(message.find("/images, /labels"), std::string::npos) << message;
  EXPECT_NE(open_error(path, "group/images").find("no dataset 'group/images'"), std::string::npos);

  const hid_t handle = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Gclose(H5Gcreate2(handle, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Fclose(handle);
  EXPECT_NE(open_error(path, "group").find("'group' in HDF5 file " + path + " is not a dataset"), std::string::npos)
      << open_error(path, "group");
}

TEST_F(Hdf5SourceTest, BadDatasetLayoutsNameFileAndDataset) {
  const auto values = iota_values<std::int32_t>(40, 0);
  const std::string path = file("bad.h5");
  write_file(path, {{"images", H5T_STD_U8LE, H5T_NATIVE_INT32, {10, 2}, values.data()},
                    {"short_labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {9}, values.data()},
                    {"float_labels", H5T_IEEE_F32LE, H5T_NATIVE_INT32, {10}, values.data()},
                    {"labels_2d", H5T_STD_I32LE, H5T_NATIVE_INT32, {10, 2}, values.data()},
                    {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {10}, values.data()},
                    {"empty", H5T_STD_U8LE, H5T_NATIVE_INT32, {0, 2}, nullptr},
                    {"empty_labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {0}, nullptr},
                    {"u16", H5T_STD_U16LE, H5T_NATIVE_INT32, {10, 2}, values.data()}});
  const auto expect_error = [&](const std::string& inputs, const std::string& targets, const std::string& what) {
    const std::string message = open_error(path, inputs, targets);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect_error("images", "short_labels", "'images' has 10 samples but 'short_labels' has 9");
  expect_error("images", "float_labels", "dataset 'float_labels' in HDF5 file " + path + " holds float32");
  expect_error("empty", "empty_labels", "dataset 'empty' in HDF5 file " + path + " is empty");
  expect_error("u16", "labels", "dataset 'u16' in HDF5 file " + path + " holds uint16");
  EXPECT_EQ(open_error(path, "images", "labels"), "");
  // Targets of any shape [N, ...] (e.g. a next token per position), read row by row with their samples.
  Hdf5Source two(path, "images", "labels_2d");
  const SampleBatch batch = two.read_sorted({2, 7});
  EXPECT_EQ(batch.targets.sizes(), (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(batch.targets[1][1].item<std::int64_t>(), 15);
}

TEST_F(Hdf5SourceTest, ReadsWhatH5pyWrites) {
  DPT_REQUIRE_PYTHON("h5py, numpy");
  const std::string path = file("h5py.h5");
  const std::string command =
      std::string("/usr/bin/python3 ") + DPTRAIN_SOURCE_DIR + "/tests/unit/h5py_crosscheck.py " + path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  // The formulas of h5py_crosscheck.py, for flat element index k.
  const std::vector<std::pair<std::string, std::function<double(std::int64_t)>>> inputs{
      {"u8", [](std::int64_t k) { return static_cast<double>((k * 7 + 3) % 256); }},
      {"i16", [](std::int64_t k) { return static_cast<double>(k * 37 % 2001 - 1000); }},
      {"i32be", [](std::int64_t k) { return static_cast<double>(k * 100003 - 5000000); }},
      {"f16", [](std::int64_t k) { return static_cast<double>(k % 64) * 0.5 - 8; }},
      {"f32", [](std::int64_t k) { return static_cast<double>(static_cast<float>(k * 0.25 - 3)); }},
      {"f64", [](std::int64_t k) { return static_cast<double>(k) * 0.1 - 2; }}};
  const std::vector<std::pair<std::string, std::function<std::int64_t(std::int64_t)>>> targets{
      {"labels_u8", [](std::int64_t k) { return k * 3 % 10; }},
      {"labels_i64", [](std::int64_t k) { return k - 6; }},
      {"labels_u16be", [](std::int64_t k) { return k * 1000; }}};
  const std::vector<std::int64_t> indices{0, 1, 2, 5, 7, 8, 12};
  for (const auto& [input_name, input_value] : inputs) {
    for (const auto& [target_name, target_value] : targets) {
      Hdf5Source source(path, input_name, target_name);
      ASSERT_EQ(source.size(), 13);
      const SampleBatch batch = source.read_sorted(indices);
      const std::int64_t per_sample = batch.inputs[0].numel();
      const auto values = batch.inputs.to(at::kDouble).reshape({static_cast<std::int64_t>(indices.size()), -1});
      for (std::size_t r = 0; r < indices.size(); ++r) {
        const auto row = static_cast<std::int64_t>(r);
        EXPECT_EQ(batch.targets[row].item<std::int64_t>(), target_value(indices[r])) << target_name;
        for (std::int64_t j = 0; j < per_sample; ++j) {
          EXPECT_EQ(values[row][j].item<double>(), input_value(indices[r] * per_sample + j)) << input_name;
        }
      }
    }
  }
  EXPECT_EQ(Hdf5Source(path, "f16", "labels_u8").read_sorted({0}).inputs.scalar_type(), at::kFloat);
  const std::string report = inspect_hdf5(path);
  EXPECT_NE(report.find("/u8  uint8 [13,4,5]  chunks [3,4,5]  compression shuffle+gzip(4)  samples 13"),
            std::string::npos) << report;
  EXPECT_NE(report.find("/f64  float64 [13,6]  chunks [4,6]  compression fletcher32"), std::string::npos) << report;
  EXPECT_NE(report.find("/i16  int16 [13,6]  contiguous  compression none"), std::string::npos) << report;
}

}  // namespace
}  // namespace dpt::data::test
