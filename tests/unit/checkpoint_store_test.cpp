// Tests for CheckpointStore: round trip, dedup, damage detection, latest, keep_last, unwritable roots, crash leftovers.
#include "checkpoint/checkpoint_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "core/error.h"

namespace dpt::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// The model depends only on `scale`, the optimizer blob and state only on `step`, so tests can share either.
CheckpointContents sample(float scale, std::int64_t step) {
  CheckpointContents contents;
  contents.tensors["model"] = {{"fc.weight", at::arange(12, at::kFloat).reshape({3, 4}).mul(scale)},
                               {"fc.bias", at::full({3}, scale, at::kBFloat16)},
                               {"bn.num_batches", at::scalar_tensor(7, at::kLong)}};
  contents.tensors["ema"] = {{"fc.weight", at::ones({3, 4}, at::kHalf)}};
  contents.blobs["optimizer.pt"] = std::string("\0\x01\xff pickled", 11) + std::to_string(step);
  contents.state = {{"step", step}, {"epoch", 1}, {"cursor", 640}, {"config", {{"optimizer.lr", 0.1}}}};
  return contents;
}

void expect_same(const CheckpointContents& actual, const CheckpointContents& expected) {
  ASSERT_EQ(actual.tensors.size(), expected.tensors.size());
  for (const auto& [stem, tensors] : expected.tensors) {
    ASSERT_EQ(actual.tensors.count(stem), 1u) << stem;
    // Encoded bytes hold names, order, dtypes, shapes and data, so equality means bit-identical tensors.
    EXPECT_EQ(encode_safetensors(actual.tensors.at(stem)), encode_safetensors(tensors)) << stem;
  }
  EXPECT_EQ(actual.blobs, expected.blobs);
  EXPECT_EQ(actual.state, expected.state);
}

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(testing::TempDir()) / ("dpt_ckpt_" + std::to_string(::getpid()) + "_" +
                                            testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string root() const { return root_.string(); }

  std::set<std::string> blob_files() const {
    std::set<std::string> out;
    for (const auto& entry : fs::directory_iterator(root_ / "blobs" / "sha256")) {
      out.insert(entry.path().filename().string());
    }
    return out;
  }

  nlohmann::json manifest(const std::string& version) const {
    return nlohmann::json::parse(std::ifstream(root_ / "versions" / version / "manifest.json"));
  }

  fs::path blob_of(const std::string& version, const std::string& file) const {
    const nlohmann::json written = manifest(version);
    for (const auto& entry : written["files"]) {
      if (entry["name"] == file) return root_ / "blobs" / "sha256" / entry["sha256"].get<std::string>();
    }
    ADD_FAILURE() << file << " not in " << version;
    return {};
  }

  std::vector<std::string> version_names(const CheckpointStore& store) const {
    std::vector<std::string> out;
    for (const auto& version : store.list()) out.push_back(version.name);
    return out;
  }

  fs::path root_;
};

TEST_F(CheckpointStoreTest, PublishListResolveLoadRoundTrip) {
  CheckpointStore store(root());
  EXPECT_FALSE(fs::exists(root_)) << "the constructor must not create anything";
  const CheckpointContents original = sample(1.5f, 5);
  EXPECT_EQ(store.publish(original), "v000001");

  const auto versions = store.list();
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].name, "v000001");
  EXPECT_EQ(versions[0].step, 5);
  EXPECT_TRUE(std::regex_match(versions[0].created, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << versions[0].created;
  EXPECT_EQ(fs::path(versions[0].path), root_ / "versions" / "v000001");

  const auto written = manifest("v000001");
  EXPECT_EQ(written["format_version"], 1);
  EXPECT_EQ(written["step"], 5);
  EXPECT_EQ(written["state"], original.state);
  std::set<std::string> names;
  for (const auto& file : written["files"]) {
    names.insert(file["name"].get<std::string>());
    EXPECT_EQ(fs::file_size(blob_of("v000001", file["name"])), file["size"].get<std::uint64_t>());
  }
  EXPECT_EQ(names, (std::set<std::string>{"model.safetensors", "ema.safetensors", "optimizer.pt"}));
  // The stored model is a plain safetensors file that other tools can read.
  EXPECT_EQ(encode_safetensors(read_safetensors(blob_of("v000001", "model.safetensors").string())),
            encode_safetensors(original.tensors.at("model")));

  for (const std::string& ref :
       std::vector<std::string>{"latest", "v1", "v000001", versions[0].path, versions[0].path + "/"}) {
    SCOPED_TRACE(ref);
    EXPECT_EQ(fs::path(store.resolve(ref)), root_ / "versions" / "v000001");
    expect_same(store.load(ref), original);
  }
  store.verify("latest");
}

TEST_F(CheckpointStoreTest, EmptyStoreAndUnknownRefsFailClearly) {
  CheckpointStore store(root());
  EXPECT_TRUE(store.list().empty());
  EXPECT_THAT([&] { store.resolve("latest"); }, ThrowsMessage<Error>(HasSubstr("no checkpoint in " + root() + ": ")));
  EXPECT_THAT([&] { store.load("latest"); }, ThrowsMessage<Error>(HasSubstr("no checkpoint in " + root() + ": ")));
  store.publish(sample(1, 1));
  EXPECT_THAT([&] { store.load("v3"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("no checkpoint version v3"), HasSubstr("available: v000001"))));
  EXPECT_THAT([&] { store.resolve(root() + "/nowhere"); },
              ThrowsMessage<Error>(HasSubstr("'" + root() + "/nowhere' is not \"latest\"")));
}

TEST_F(CheckpointStoreTest, IdenticalFilesAreStoredOnce) {
  CheckpointStore store(root());
  store.publish(sample(1, 1));
  const auto first = blob_files();
  EXPECT_EQ(first.size(), 3u);
  const fs::path model = blob_of("v000001", "model.safetensors");
  struct stat before {};
  ASSERT_EQ(::stat(model.c_str(), &before), 0);

  store.publish(sample(1, 2));  // same model and ema, new optimizer state
  EXPECT_EQ(blob_of("v000002", "model.safetensors"), model);
  EXPECT_EQ(blob_files().size(), 4u) << "only the new optimizer blob is written";
  struct stat after {};
  ASSERT_EQ(::stat(model.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "an existing blob must not be rewritten";

  store.publish(sample(1, 2));
  EXPECT_EQ(blob_files().size(), 4u);
  EXPECT_THAT(version_names(store), ElementsAre("v000001", "v000002", "v000003"));
}

TEST_F(CheckpointStoreTest, DamagedBlobFailsLoadNamingTheFileAndAnOlderVersion) {
  CheckpointStore store(root());
  store.publish(sample(1, 1));
  store.publish(sample(2, 2));
  const fs::path model = blob_of("v000002", "model.safetensors");
  std::string bytes;
  {
    std::ifstream in(model, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(model, std::ios::binary | std::ios::trunc) << bytes;

  const auto damaged = ThrowsMessage<Error>(AllOf(HasSubstr("v000002"), HasSubstr("model.safetensors"),
                                                  HasSubstr("sha256"), HasSubstr("older version such as v000001")));
  EXPECT_THAT([&] { store.load("latest"); }, damaged);
  EXPECT_THAT([&] { store.verify("v2"); }, damaged);
  expect_same(store.load("v1"), sample(1, 1));

  fs::remove(blob_of("v000001", "optimizer.pt"));
  EXPECT_THAT([&] { store.load("v1"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("v000001"), HasSubstr("optimizer.pt is missing"),
                                         HasSubstr("no older version exists"))));
}

TEST_F(CheckpointStoreTest, LatestIsTheNewestVersion) {
  CheckpointStore store(root());
  for (int step = 1; step <= 3; ++step) store.publish(sample(static_cast<float>(step), step));
  EXPECT_EQ(fs::path(store.resolve("latest")), root_ / "versions" / "v000003");
  EXPECT_EQ(store.load("latest").state["step"], 3);
  std::string alias;
  std::getline(std::ifstream(root_ / "aliases" / "latest"), alias);
  EXPECT_EQ(alias, "v000003");
}

TEST_F(CheckpointStoreTest, KeepLastRemovesOldVersionsAndUnreferencedBlobs) {
  CheckpointStore store(root());
  for (int step = 1; step <= 4; ++step) store.publish(sample(static_cast<float>(step), step));
  const fs::path shared_ema = blob_of("v000001", "ema.safetensors");
  EXPECT_THROW(store.keep_last(-1), Error);
  store.keep_last(0);
  EXPECT_EQ(store.list().size(), 4u);

  store.keep_last(2);
  EXPECT_THAT(version_names(store), ElementsAre("v000003", "v000004"));
  std::set<std::string> referenced;
  for (const std::string version : {"v000003", "v000004"}) {
    const nlohmann::json written = manifest(version);
    for (const auto& file : written["files"]) referenced.insert(file["sha256"].get<std::string>());
  }
  EXPECT_EQ(blob_files(), referenced);
  EXPECT_TRUE(fs::exists(shared_ema)) << "a blob still referenced must survive";
  expect_same(store.load("v3"), sample(3, 3));
  expect_same(store.load("latest"), sample(4, 4));

  EXPECT_EQ(store.publish(sample(5, 5)), "v000005");
  store.keep_last(1);
  EXPECT_THAT(version_names(store), ElementsAre("v000005"));
  expect_same(store.load("latest"), sample(5, 5));
}

TEST_F(CheckpointStoreTest, UnwritableRootFailsNamingTheDirectory) {
  fs::create_directories(root_);
  std::ofstream(root_ / "file") << "not a directory";
  const std::string bad_root = (root_ / "file" / "store").string();
  CheckpointStore store(bad_root);
  EXPECT_THAT([&] { store.check_writable(); }, ThrowsMessage<Error>(HasSubstr("checkpoint directory " + bad_root)));
  EXPECT_THAT([&] { store.publish(sample(1, 1)); }, ThrowsMessage<Error>(HasSubstr(bad_root)));
}

TEST_F(CheckpointStoreTest, LeftoversOfACrashAreIgnored) {
  CheckpointStore store(root());
  store.publish(sample(1, 1));
  // A publish that crashed before its rename, and a version directory whose manifest never arrived.
  fs::create_directories(root_ / "staging" / "publish-crashed");
  fs::copy_file(root_ / "versions" / "v000001" / "manifest.json",
                root_ / "staging" / "publish-crashed" / "manifest.json");
  fs::create_directories(root_ / "versions" / "v000002");
  EXPECT_THAT(version_names(store), ElementsAre("v000001"));
  EXPECT_EQ(fs::path(store.resolve("latest")), root_ / "versions" / "v000001");

  EXPECT_EQ(store.publish(sample(2, 2)), "v000002");
  expect_same(store.load("latest"), sample(2, 2));
}

TEST_F(CheckpointStoreTest, NewerManifestFormatIsRefused) {
  CheckpointStore store(root());
  store.publish(sample(1, 1));
  auto newer = manifest("v000001");
  newer["format_version"] = 2;
  std::ofstream(root_ / "versions" / "v000001" / "manifest.json", std::ios::trunc) << newer.dump();
  EXPECT_THAT([&] { store.load("latest"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("manifest format 2"), HasSubstr("newer dptrain"))));
}

TEST_F(CheckpointStoreTest, InvalidContentsLeaveNothingBehind) {
  CheckpointStore store(root());
  CheckpointContents bad_name = sample(1, 1);
  bad_name.blobs["../escape"] = "x";
  EXPECT_THAT([&] { store.publish(bad_name); }, ThrowsMessage<Error>(HasSubstr("'../escape'")));
  CheckpointContents clash = sample(1, 1);
  clash.blobs["model.safetensors"] = "x";
  EXPECT_THAT([&] { store.publish(clash); }, ThrowsMessage<Error>(HasSubstr("'model.safetensors'")));
  CheckpointContents bad_state = sample(1, 1);
  bad_state.state["note"] = "\xff\xfe";
  EXPECT_THAT([&] { store.publish(bad_state); }, ThrowsMessage<Error>(HasSubstr("UTF-8")));
  EXPECT_TRUE(store.list().empty());
  EXPECT_TRUE(blob_files().empty());
}

// Restricts the size of files this process may write, simulating a full disk without needing one.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) : previous_handler_(std::signal(SIGXFSZ, SIG_IGN)) {
    ::getrlimit(RLIMIT_FSIZE, &previous_);
    rlimit limited = previous_;
    limited.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &previous_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  void (*previous_handler_)(int);
  rlimit previous_{};
};

TEST_F(CheckpointStoreTest, FailedWritesNameThePathAndKeepEarlierVersions) {
  CheckpointStore store(root());
  store.publish(sample(1, 1));
  {
    FileSizeLimit limit(64 * 1024);
    CheckpointContents big_blob = sample(1, 2);
    big_blob.blobs["optimizer.pt"] = std::string(200000, 'x');
    EXPECT_THAT([&] { store.publish(big_blob); },
                ThrowsMessage<Error>(HasSubstr((root_ / "blobs" / "sha256").string())));
    CheckpointContents big_state = sample(1, 3);
    big_state.state["notes"] = std::string(200000, 'y');
    EXPECT_THAT([&] { store.publish(big_state); }, ThrowsMessage<Error>(HasSubstr("manifest.json")));
  }
  EXPECT_THAT(version_names(store), ElementsAre("v000001"));
  expect_same(store.load("latest"), sample(1, 1));
  EXPECT_TRUE(fs::is_empty(root_ / "staging")) << "the failed publish's staging dir must be cleaned up";
  for (const auto& blob : blob_files()) EXPECT_EQ(blob.find(".tmp"), std::string::npos) << blob;
}

}  // namespace
}  // namespace dpt::checkpoint
