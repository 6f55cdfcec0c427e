// Many-file sources, globs, the dataset digest, the in-memory cache, .npy import and verify: values read back
// exactly, and each bad input's message names the file and dataset.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/data_files.h"
#include "data/dataset_digest.h"
#include "data/hdf5_source.h"
#include "data/import_npy.h"
#include "data/tensor_source.h"
#include "data/verify_dataset.h"
#include "hdf5_test_file.h"
#include "python_required.h"

namespace fs = std::filesystem;

namespace dpt::data::test {
namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

class DataFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir(); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Part k holds samples with global values: images int16 [n, 3] = 3g, 3g+1, 3g+2 and labels int32 = g, where g
  // runs on from the previous parts; each part has its own chunking and compression.
  std::string part(const std::string& name, std::int64_t first, std::int64_t n, std::vector<hsize_t> chunk, int gzip) {
    images_.push_back(iota_values<std::int16_t>(static_cast<std::size_t>(3 * n), static_cast<std::int16_t>(3 * first)));
    labels_.push_back(iota_values<std::int32_t>(static_cast<std::size_t>(n), static_cast<std::int32_t>(first)));
    const std::string path = file(name);
    const auto samples = static_cast<hsize_t>(n);
    write_file(path, {{"images", H5T_STD_I16LE, H5T_NATIVE_INT16, {samples, 3}, images_.back().data(), chunk, gzip},
                      {"labels", H5T_STD_I32BE, H5T_NATIVE_INT32, {samples}, labels_.back().data()}});
    return path;
  }

  std::vector<std::string> three_parts() {
    return {part("part-0.h5", 0, 5, {2, 3}, 4), part("part-1.h5", 5, 7, {}, -1), part("part-2.h5", 12, 4, {4, 1}, 9)};
  }

  fs::path dir_;
  std::vector<std::vector<std::int16_t>> images_;
  std::vector<std::vector<std::int32_t>> labels_;
};

TEST_F(DataFilesTest, ManyFilesReadAsOneSourceAcrossFileBoundaries) {
  const auto paths = three_parts();
  Hdf5Source source(paths, "images", "labels");
  EXPECT_EQ(source.size(), 16);
  EXPECT_EQ(source.files(), paths);
  EXPECT_EQ(source.describe(),
            "3 files " + paths[0] + " ... " + paths[2] + " (images int16 [16,3], labels int32 [16])");
  // Runs 3-6 and 11-13 cross boundaries; 15 is the very last sample.
  const std::vector<std::int64_t> indices{0, 3, 4, 5, 6, 9, 11, 12, 13, 15};
  const SampleBatch batch = source.read_sorted(indices);
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const auto row = static_cast<std::int64_t>(k);
    EXPECT_EQ(batch.targets[row].item<std::int64_t>(), indices[k]);
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(batch.inputs[row][j].item<std::int16_t>(), 3 * indices[k] + j);
  }
}

TEST_F(DataFilesTest, FilesOfOneSplitMustAgreeOnSampleShapeAndDtype) {
  const auto paths = three_parts();
  const auto values = iota_values<std::int32_t>(40, 0);
  write_file(file("wide.h5"), {{"images", H5T_STD_I16LE, H5T_NATIVE_INT32, {5, 4}, values.data()},
                               {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {5}, values.data()}});
  write_file(file("float.h5"), {{"images", H5T_IEEE_F32LE, H5T_NATIVE_INT32, {5, 3}, values.data()},
                                {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {5}, values.data()}});
  write_file(file("short.h5"), {{"images", H5T_STD_I16LE, H5T_NATIVE_INT32, {5, 3}, values.data()},
                                {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, values.data()}});
  const auto open = [&](const std::string& bad) {
    return error_of([&] { Hdf5Source({paths[0], paths[1], bad}, "images", "labels"); });
  };
  const std::string shape = open(file("wide.h5"));
  EXPECT_NE(shape.find("dataset 'images' in HDF5 file " + file("wide.h5") + " has samples of shape [4] but in " +
                       paths[0] + " of shape [3]"),
            std::string::npos)
      << shape;
  const std::string dtype = open(file("float.h5"));
  EXPECT_NE(dtype.find("dataset 'images' in HDF5 file " + file("float.h5") + " holds float32 but in " + paths[0] +
                       " int16"),
            std::string::npos)
      << dtype;
  const std::string length = open(file("short.h5"));
  EXPECT_NE(length.find("HDF5 file " + file("short.h5") + ": dataset 'images' has 5 samples but 'labels' has 4"),
            std::string::npos)
      << length;
  EXPECT_NE(open(file("absent.h5")).find(file("absent.h5") + " does not exist"), std::string::npos);
}

TEST_F(DataFilesTest, GlobsExpandInNameOrderAndBadPatternsNameTheKey) {
  const auto paths = three_parts();
  EXPECT_EQ(expand_data_files({file("part-*.h5")}, "data.train"), paths);
  EXPECT_EQ(expand_data_files({"", paths[2], file("part-[01].h5")}, "data.train"),
            (std::vector<std::string>{paths[2], paths[0], paths[1]}));
  EXPECT_EQ(expand_data_files({file("plain-missing.h5")}, "data.train"),
            std::vector<std::string>{file("plain-missing.h5")});
  const std::string none = error_of([&] { expand_data_files({file("nothing-*.h5")}, "data.train"); });
  EXPECT_NE(none.find("data.train = \"" + file("nothing-*.h5") + "\" matches no file"), std::string::npos) << none;
  const std::string twice = error_of([&] { expand_data_files({file("part-*.h5"), paths[1]}, "data.train"); });
  EXPECT_NE(twice.find("data.train names " + paths[1] + " twice"), std::string::npos) << twice;
}

TEST_F(DataFilesTest, DigestIsCachedBesideTheDataAndFollowsContentNotPath) {
  const auto paths = three_parts();
  const nlohmann::json digest = dataset_digest(paths);
  ASSERT_EQ(digest.at("files").size(), 3u);
  const auto& first = digest.at("files")[0];
  EXPECT_EQ(first.at("path"), paths[0]);
  EXPECT_EQ(first.at("size").get<std::int64_t>(), static_cast<std::int64_t>(fs::file_size(paths[0])));
  EXPECT_EQ(first.at("datasets")[0].at("name"), "/images");
  EXPECT_EQ(first.at("datasets")[0].at("dtype"), "int16");
  EXPECT_EQ(first.at("datasets")[0].at("shape"), (std::vector<std::int64_t>{5, 3}));
  EXPECT_EQ(first.at("sha256").get<std::string>().size(), 64u);
  EXPECT_EQ(digest.at("sha256").get<std::string>().size(), 64u);
  // The md5 that DVC records for the file: the plain md5 of its bytes, as md5sum prints it.
  std::string md5sum(32, '\0');
  FILE* pipe = ::popen(("md5sum " + paths[0]).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  ASSERT_EQ(std::fread(md5sum.data(), 1, md5sum.size(), pipe), md5sum.size());
  ::pclose(pipe);
  EXPECT_EQ(first.at("md5").get<std::string>(), md5sum);
  ASSERT_TRUE(fs::exists(digest_cache_path(paths[0])));
  EXPECT_EQ(digest_cache_path(paths[0]), file(".part-0.h5.dptrain-digest.json"));
  // Hidden: a glob over the data folder does not pick the cache files up.
  EXPECT_EQ(expand_data_files({file("*")}, "data.train").size(), 3u);

  // The same bytes under another name have the same content hash.
  fs::copy_file(paths[0], file("copy.h5"));
  EXPECT_EQ(dataset_digest({file("copy.h5")}).at("files")[0].at("sha256"), first.at("sha256"));
  EXPECT_NE(dataset_digest({file("copy.h5")}).at("sha256"), digest.at("sha256"));

  // A cache whose size and mtime match is trusted (so it is really used) ...
  nlohmann::json cached = nlohmann::json::parse(std::ifstream(digest_cache_path(paths[0])));
  cached["sha256"] = "from-cache";
  std::ofstream(digest_cache_path(paths[0])) << cached.dump();
  EXPECT_EQ(dataset_digest({paths[0]}).at("files")[0].at("sha256"), "from-cache");
  // ... and recomputed once the file changes.
  fs::last_write_time(paths[0], fs::last_write_time(paths[0]) + std::chrono::seconds(5));
  EXPECT_EQ(dataset_digest({paths[0]}).at("files")[0].at("sha256"), first.at("sha256"));
}

TEST_F(DataFilesTest, InMemoryCacheHoldsTheSourceWhenItFitsTheBudget) {
  auto source = std::make_shared<Hdf5Source>(three_parts(), "images", "labels");
  // 16 samples x (3 x int16 inputs + one int64 target) = 16 x 14 bytes.
  EXPECT_EQ(source_bytes(*source), 16 * 14);
  EXPECT_EQ(cache_in_memory(source, 16 * 14 - 1), source);
  EXPECT_EQ(cache_in_memory(source, 0), source);
  const auto cached = cache_in_memory(source, 16 * 14);
  ASSERT_NE(cached, source);
  const std::vector<std::int64_t> indices{1, 4, 5, 12, 15};
  const SampleBatch a = cached->read_sorted(indices);
  const SampleBatch b = source->read_sorted(indices);
  EXPECT_TRUE(a.inputs.equal(b.inputs));
  EXPECT_TRUE(a.targets.equal(b.targets));
  EXPECT_EQ(a.inputs.scalar_type(), at::kShort);
}

TEST_F(DataFilesTest, VerifyReadsEverythingAndNamesTheFirstBadValue) {
  const auto paths = three_parts();
  const std::string report = verify_dataset(paths, "images", "labels");
  EXPECT_NE(report.find("ok  " + paths[1] + "  7 samples, labels 5..11"), std::string::npos) << report;
  EXPECT_NE(report.find("ok  3 file(s), 16 samples"), std::string::npos) << report;

  std::vector<float> values(12, 1.0f);
  values[7] = std::nanf("");
  const std::vector<std::int32_t> labels{0, 1, 2, 3};
  const std::vector<std::int32_t> negative{0, -1, 2, 3};
  write_file(file("nan.h5"), {{"images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {4, 3}, values.data()},
                              {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, labels.data()}});
  write_file(file("negative.h5"), {{"images", H5T_STD_I16LE, H5T_NATIVE_INT32, {4, 1}, labels.data()},
                                   {"labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, negative.data()}});
  const std::string nan = error_of([&] { verify_dataset({file("nan.h5")}, "images", "labels"); });
  EXPECT_NE(nan.find("dataset 'images' in HDF5 file " + file("nan.h5") + " has a NaN or infinite value in sample 2"),
            std::string::npos)
      << nan;
  const std::string minus = error_of([&] { verify_dataset({file("negative.h5")}, "images", "labels"); });
  EXPECT_NE(minus.find("dataset 'labels' in HDF5 file " + file("negative.h5") + " holds the negative label -1"),
            std::string::npos)
      << minus;

  // A damaged chunk in the middle of a compressed file: it opens fine, and only reading every sample finds it.
  std::vector<std::uint8_t> noise(64 * 1024);
  std::uint32_t state = 1;
  for (auto& v : noise) v = static_cast<std::uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  const std::vector<std::uint8_t> noise_labels(64, 1);
  write_file(file("damaged.h5"), {{"images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {64, 1024}, noise.data(), {8, 1024}, 1},
                                  {"labels", H5T_STD_U8LE, H5T_NATIVE_UINT8, {64}, noise_labels.data()}});
  {
    std::fstream out(file("damaged.h5"), std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(fs::file_size(file("damaged.h5")) / 2));
    out << std::string(512, '\xff');
  }
  EXPECT_EQ(error_of([&] { Hdf5Source(file("damaged.h5"), "images", "labels"); }), "");
  const std::string damaged = error_of([&] { verify_dataset({file("damaged.h5")}, "images", "labels"); });
  EXPECT_NE(damaged.find("of dataset 'images' in " + file("damaged.h5")), std::string::npos) << damaged;
}

TEST_F(DataFilesTest, ImportNpyMatchesWhatNumpyWroteAsReadByH5py) {
  DPT_REQUIRE_PYTHON("h5py, numpy");
  const std::string script = std::string("/usr/bin/python3 ") + DPTRAIN_SOURCE_DIR + "/tests/unit/npy_crosscheck.py ";
  ASSERT_EQ(std::system((script + "write " + dir_.string()).c_str()), 0);
  for (const std::string name : {"u1", "i2be", "f2", "f4", "f8", "i8"}) {
    import_npy(file(name + ".npy"), file("labels.npy"), file(name + ".h5"));
  }
  ASSERT_EQ(std::system((script + "check " + dir_.string()).c_str()), 0);
  // dptrain reads them too: float16 widened to float32, big-endian int16 in native order.
  const SampleBatch half = Hdf5Source(file("f2.h5"), "images", "labels").read_sorted({3});
  EXPECT_EQ(half.inputs.scalar_type(), at::kFloat);
  EXPECT_EQ(half.inputs[0][1].item<float>(), 7 % 64 * 0.5f - 8);
  EXPECT_EQ(Hdf5Source(file("i2be.h5"), "images", "labels").read_sorted({2}).inputs[0][1].item<std::int16_t>(),
            11 * 37 - 700);
  EXPECT_EQ(Hdf5Source(file("u1.h5"), "images", "labels").read_sorted({36}).targets[0].item<std::int64_t>(), 8);
}

TEST_F(DataFilesTest, ImportNpyRejectsBadArraysByName) {
  const auto npy = [&](const std::string& name, const std::string& header, std::size_t data_bytes) {
    std::string text = "{'descr': " + header + " }";
    text.resize(((text.size() + 11) / 64 + 1) * 64 - 11, ' ');
    text += '\n';
    std::ofstream out(file(name), std::ios::binary);
    out << "\x93NUMPY" << '\x01' << '\x00' << static_cast<char>(text.size() & 0xff)
        << static_cast<char>(text.size() >> 8) << text << std::string(data_bytes, '\0');
    return file(name);
  };
  const std::string labels = npy("labels.npy", "'<i8', 'fortran_order': False, 'shape': (4,),", 32);
  const std::string ok = npy("ok.npy", "'|u1', 'fortran_order': False, 'shape': (4, 2),", 8);
  const auto message = [&](const std::string& inputs, const std::string& targets) {
    return error_of([&] { import_npy(inputs, targets, file("out.h5")); });
  };
  EXPECT_EQ(message(ok, labels), "");
  EXPECT_NE(message(npy("fortran.npy", "'<f4', 'fortran_order': True, 'shape': (4, 2),", 32), labels)
                .find(file("fortran.npy") + " is in Fortran order"),
            std::string::npos);
  EXPECT_NE(message(npy("cut.npy", "'<f4', 'fortran_order': False, 'shape': (4, 2),", 30), labels)
                .find(file("cut.npy") + " has "),
            std::string::npos);
  EXPECT_NE(message(npy("complex.npy", "'<c8', 'fortran_order': False, 'shape': (4, 2),", 64), labels)
                .find(file("complex.npy") + " holds dtype '<c8'"),
            std::string::npos);
  EXPECT_NE(message(ok, npy("float_labels.npy", "'<f4', 'fortran_order': False, 'shape': (4,),", 16))
                .find("targets must be 1-D integer class labels"),
            std::string::npos);
  EXPECT_NE(message(ok, npy("five.npy", "'<i8', 'fortran_order': False, 'shape': (5,),", 40))
                .find("holds 4 samples but " + file("five.npy") + " holds 5"),
            std::string::npos);
  std::ofstream(file("text.npy")) << "not numpy";
  EXPECT_NE(message(file("text.npy"), labels).find("is not a .npy file"), std::string::npos);
  EXPECT_FALSE(fs::exists(file("out.h5.tmp." + std::to_string(::getpid()))));
}

}  // namespace
}  // namespace dpt::data::test
