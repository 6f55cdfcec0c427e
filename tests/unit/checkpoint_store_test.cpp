// Tests for the CheckpointStore interface over LocalCheckpointStore: the factory, round trip, dedup, damage and
// fallback, latest, aliases, retention with readers and the writer lock, unwritable roots, crash leftovers; the
// lineage of versions across stores.
#include "checkpoint/checkpoint_store.h"
#include "checkpoint/checkpointer.h"
#include "checkpoint/lineage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fcntl.h>

#include <fstream>
#include <iterator>
#include <map>
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
  const auto store = open_checkpoint_store(root());
  EXPECT_FALSE(fs::exists(root_)) << "the constructor must not create anything";
  const CheckpointContents original = sample(1.5f, 5);
  EXPECT_EQ(store->publish(original), "v000001");

  const auto versions = store->list();
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
  for (const auto& file : written["files"]) EXPECT_EQ(file["md5"].get<std::string>().size(), 32u) << file;
  // The stored model is a plain safetensors file that other tools can read.
  EXPECT_EQ(encode_safetensors(read_safetensors(blob_of("v000001", "model.safetensors").string())),
            encode_safetensors(original.tensors.at("model")));

  for (const std::string& ref :
       std::vector<std::string>{"latest", "v1", "v000001", versions[0].path, versions[0].path + "/"}) {
    SCOPED_TRACE(ref);
    EXPECT_EQ(fs::path(store->resolve(ref)), root_ / "versions" / "v000001");
    expect_same(store->load(ref), original);
  }
  store->verify("latest");
}

TEST_F(CheckpointStoreTest, FactoryOpensADirectoryAsAnAbsoluteRootAndRefusesUnknownSchemes) {
  fs::create_directories(root_);
  const fs::path previous = fs::current_path();
  fs::current_path(root_);
  const std::string relative_root = open_checkpoint_store("./store/")->root();
  fs::current_path(previous);
  EXPECT_EQ(relative_root, (root_ / "store").string()) << "the root must not depend on the working directory";
  EXPECT_FALSE(fs::exists(root_ / "store")) << "opening must not create anything";
  for (const std::string location : {"s3://bucket/checkpoints", "gs://bucket/run-1"}) {
    EXPECT_THAT([&] { open_checkpoint_store(location); },
                ThrowsMessage<Error>(AllOf(HasSubstr("'" + location + "'"),
                                           HasSubstr(location.substr(0, 2) + "://, which this dptrain has no store"),
                                           HasSubstr("supported: a local or mounted directory path"))));
  }
  EXPECT_THAT([&] { open_checkpoint_store(""); }, ThrowsMessage<Error>(HasSubstr("checkpoint.dir")));
}

TEST_F(CheckpointStoreTest, EmptyStoreAndUnknownRefsFailClearly) {
  const auto store = open_checkpoint_store(root());
  EXPECT_TRUE(store->list().empty());
  EXPECT_THAT([&] { store->resolve("latest"); }, ThrowsMessage<Error>(HasSubstr("no checkpoint in " + root() + ": ")));
  EXPECT_THAT([&] { store->load("latest"); }, ThrowsMessage<Error>(HasSubstr("no checkpoint in " + root() + ": ")));
  store->publish(sample(1, 1));
  EXPECT_THAT([&] { store->load("v3"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("no checkpoint version v3"), HasSubstr("available: v000001"))));
  EXPECT_THAT([&] { store->resolve(root() + "/nowhere"); },
              ThrowsMessage<Error>(HasSubstr("'" + root() + "/nowhere' is not \"latest\"")));
}

TEST_F(CheckpointStoreTest, IdenticalFilesAreStoredOnce) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  const auto first = blob_files();
  EXPECT_EQ(first.size(), 3u);
  const fs::path model = blob_of("v000001", "model.safetensors");
  struct stat before {};
  ASSERT_EQ(::stat(model.c_str(), &before), 0);

  store->publish(sample(1, 2));  // same model and ema, new optimizer state
  EXPECT_EQ(blob_of("v000002", "model.safetensors"), model);
  EXPECT_EQ(blob_files().size(), 4u) << "only the new optimizer blob is written";
  struct stat after {};
  ASSERT_EQ(::stat(model.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "an existing blob must not be rewritten";

  store->publish(sample(1, 2));
  EXPECT_EQ(blob_files().size(), 4u);
  EXPECT_THAT(version_names(*store), ElementsAre("v000001", "v000002", "v000003"));
}

TEST_F(CheckpointStoreTest, DamagedBlobFailsLoadNamingTheFileAndAnOlderVersion) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  store->publish(sample(2, 2));
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
  EXPECT_THAT([&] { store->load("v2"); }, damaged);
  EXPECT_THAT([&] { store->verify("latest"); }, damaged) << "verify checks the newest version itself";
  EXPECT_THAT([&] { store->verify("v2"); }, damaged);
  EXPECT_NO_THROW(store->verify("v1"));
  expect_same(store->load("v1"), sample(1, 1));

  // Resuming from "latest" falls back past the damaged version and says so, once.
  std::vector<std::string> skipped;
  expect_same(store->load("latest", &skipped), sample(1, 1));
  EXPECT_THAT(skipped, ElementsAre(AllOf(HasSubstr("v000002"), HasSubstr("sha256"))));

  fs::remove(blob_of("v000001", "optimizer.pt"));
  EXPECT_THAT([&] { store->load("latest"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("v000001"), HasSubstr("optimizer.pt is missing"),
                                         HasSubstr("no older version exists"))));
}

TEST_F(CheckpointStoreTest, LatestIsTheNewestVersion) {
  const auto store = open_checkpoint_store(root());
  for (int step = 1; step <= 3; ++step) store->publish(sample(static_cast<float>(step), step));
  EXPECT_EQ(fs::path(store->resolve("latest")), root_ / "versions" / "v000003");
  EXPECT_EQ(store->load("latest").state["step"], 3);
  std::string alias;
  std::getline(std::ifstream(root_ / "aliases" / "latest"), alias);
  EXPECT_EQ(alias, "v000003");
}

TEST_F(CheckpointStoreTest, PartialNewestVersionIsSkippedByLatest) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  store->publish(sample(2, 2));
  // A manifest cut short, as a copy or a disk error could leave it.
  fs::resize_file(root_ / "versions" / "v000002" / "manifest.json", 40);
  std::vector<std::string> skipped;
  expect_same(store->load("latest", &skipped), sample(1, 1));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_THAT(skipped[0], HasSubstr("v000002"));
}

TEST_F(CheckpointStoreTest, RetentionKeepsLastEveryMthAliasedAndReaderHeldVersions) {
  const auto store = open_checkpoint_store(root());
  for (int step = 1; step <= 10; ++step) store->publish(sample(static_cast<float>(step), step));
  const fs::path shared_ema = blob_of("v000001", "ema.safetensors");
  store->set_alias("release-1", "v2");
  EXPECT_THROW(store->set_alias("v7", "v2"), Error) << "a version-like alias would never resolve";
  EXPECT_THROW(store->set_alias("latest", "v2"), Error);
  EXPECT_EQ(fs::path(store->resolve("release-1")), root_ / "versions" / "v000002");

  // A reader holding v3 open (the lock protocol of LocalCheckpointStore::read).
  fs::create_directories(root_ / "locks");
  const int reader = ::open((root_ / "locks" / "v000003.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(reader, 0);
  ASSERT_EQ(::flock(reader, LOCK_SH), 0);

  EXPECT_THROW(store->gc({-1, 0}), Error);
  EXPECT_TRUE(store->gc({0, 0}).empty()) << "keep_last = 0 keeps everything";
  EXPECT_THAT(store->gc({2, 4}), ElementsAre("v000001", "v000005", "v000006", "v000007"));
  EXPECT_THAT(version_names(*store), ElementsAre("v000002", "v000003", "v000004", "v000008", "v000009", "v000010"));
  std::set<std::string> referenced;
  for (const auto& version : version_names(*store)) {
    const nlohmann::json written = manifest(version);
    for (const auto& file : written["files"]) referenced.insert(file["sha256"].get<std::string>());
  }
  EXPECT_EQ(blob_files(), referenced) << "exactly the blobs of the kept versions remain";
  EXPECT_TRUE(fs::exists(shared_ema)) << "a blob still referenced must survive";
  for (const auto& version : version_names(*store)) store->verify(version);

  ::close(reader);  // the reader is done: v3 can go now, v2 stays while tagged
  EXPECT_THAT(store->gc({2, 4}), ElementsAre("v000003"));
  store->set_alias("release-1", "v9");
  EXPECT_THAT(store->gc({1, 0}), ElementsAre("v000002", "v000004", "v000008"));
  EXPECT_THAT(version_names(*store), ElementsAre("v000009", "v000010"));
  expect_same(store->load("release-1"), sample(9, 9));
  expect_same(store->load("latest"), sample(10, 10));
}

TEST_F(CheckpointStoreTest, AliasToARemovedVersionFailsClearly) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  fs::create_directories(root_ / "aliases");
  std::ofstream(root_ / "aliases" / "best") << "v000007\n";
  EXPECT_THAT([&] { store->load("best"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("alias 'best'"), HasSubstr("v000007"))));
}

TEST_F(CheckpointStoreTest, WriterLockAdmitsOneJobAtATime) {
  const auto store = open_checkpoint_store(root());
  store->check_writable();
  {
    const auto first = store->lock_writer();
    EXPECT_THAT([&] { open_checkpoint_store(root())->lock_writer(); },
                ThrowsMessage<Error>(AllOf(HasSubstr(root()), HasSubstr("in use by another job"),
                                           HasSubstr("pid " + std::to_string(::getpid())))));
  }
  EXPECT_NO_THROW(store->lock_writer());
}

TEST_F(CheckpointStoreTest, GcRemovesWhatACrashedWriterLeftBehind) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  fs::create_directories(root_ / "staging" / "publish-123-456");
  std::ofstream(root_ / "blobs" / "sha256" / (std::string(64, 'a') + ".tmp-123-0")) << "half a blob";
  std::ofstream(root_ / "blobs" / "sha256" / std::string(64, 'b')) << "a blob no version references";
  store->gc({});
  EXPECT_TRUE(fs::is_empty(root_ / "staging"));
  EXPECT_EQ(blob_files().size(), 3u);
  expect_same(store->load("latest"), sample(1, 1));
}

TEST_F(CheckpointStoreTest, UnwritableRootFailsNamingTheDirectory) {
  fs::create_directories(root_);
  std::ofstream(root_ / "file") << "not a directory";
  const std::string bad_root = (root_ / "file" / "store").string();
  const auto store = open_checkpoint_store(bad_root);
  EXPECT_THAT([&] { store->check_writable(); }, ThrowsMessage<Error>(HasSubstr("checkpoint directory " + bad_root)));
  EXPECT_THAT([&] { store->publish(sample(1, 1)); }, ThrowsMessage<Error>(HasSubstr(bad_root)));
}

TEST_F(CheckpointStoreTest, LeftoversOfACrashAreIgnored) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  // A publish that crashed before its rename, and a version directory whose manifest never arrived.
  fs::create_directories(root_ / "staging" / "publish-crashed");
  fs::copy_file(root_ / "versions" / "v000001" / "manifest.json",
                root_ / "staging" / "publish-crashed" / "manifest.json");
  fs::create_directories(root_ / "versions" / "v000002");
  EXPECT_THAT(version_names(*store), ElementsAre("v000001"));
  EXPECT_EQ(fs::path(store->resolve("latest")), root_ / "versions" / "v000001");

  EXPECT_EQ(store->publish(sample(2, 2)), "v000002");
  expect_same(store->load("latest"), sample(2, 2));
}

// Both recorded digests are checked when a version is read: an md5 that disagrees is damage too (a manifest
// without md5, as older versions wrote, still loads on its sha256).
TEST_F(CheckpointStoreTest, LoadChecksTheMd5AsWellAsTheSha256) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  auto edited = manifest("v000001");
  const std::string recorded = edited["files"][0]["md5"].get<std::string>();
  edited["files"][0]["md5"] = std::string(32, '0');
  const fs::path path = root_ / "versions" / "v000001" / "manifest.json";
  std::ofstream(path, std::ios::trunc) << edited.dump();
  EXPECT_THAT([&] { store->load("v1"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("v000001"), HasSubstr("failed its md5 check"),
                                         HasSubstr("has md5 " + recorded))));
  edited["files"][0].erase("md5");
  std::ofstream(path, std::ios::trunc) << edited.dump();
  expect_same(store->load("v1"), sample(1, 1));
}

TEST_F(CheckpointStoreTest, NewerManifestFormatIsRefused) {
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  auto newer = manifest("v000001");
  newer["format_version"] = 2;
  std::ofstream(root_ / "versions" / "v000001" / "manifest.json", std::ios::trunc) << newer.dump();
  EXPECT_THAT([&] { store->load("latest"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("manifest format 2"), HasSubstr("newer dptrain"))));
}

TEST_F(CheckpointStoreTest, InvalidContentsLeaveNothingBehind) {
  const auto store = open_checkpoint_store(root());
  CheckpointContents bad_name = sample(1, 1);
  bad_name.blobs["../escape"] = "x";
  EXPECT_THAT([&] { store->publish(bad_name); }, ThrowsMessage<Error>(HasSubstr("'../escape'")));
  CheckpointContents clash = sample(1, 1);
  clash.blobs["model.safetensors"] = "x";
  EXPECT_THAT([&] { store->publish(clash); }, ThrowsMessage<Error>(HasSubstr("'model.safetensors'")));
  CheckpointContents bad_state = sample(1, 1);
  bad_state.state["note"] = "\xff\xfe";
  EXPECT_THAT([&] { store->publish(bad_state); }, ThrowsMessage<Error>(HasSubstr("UTF-8")));
  EXPECT_TRUE(store->list().empty());
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
  const auto store = open_checkpoint_store(root());
  store->publish(sample(1, 1));
  {
    FileSizeLimit limit(64 * 1024);
    CheckpointContents big_blob = sample(1, 2);
    big_blob.blobs["optimizer.pt"] = std::string(200000, 'x');
    EXPECT_THAT([&] { store->publish(big_blob); },
                ThrowsMessage<Error>(HasSubstr((root_ / "blobs" / "sha256").string())));
    CheckpointContents big_state = sample(1, 3);
    big_state.state["notes"] = std::string(200000, 'y');
    EXPECT_THAT([&] { store->publish(big_state); }, ThrowsMessage<Error>(HasSubstr("manifest.json")));
  }
  EXPECT_THAT(version_names(*store), ElementsAre("v000001"));
  expect_same(store->load("latest"), sample(1, 1));
  EXPECT_TRUE(fs::is_empty(root_ / "staging")) << "the failed publish's staging dir must be cleaned up";
  for (const auto& blob : blob_files()) EXPECT_EQ(blob.find(".tmp"), std::string::npos) << blob;
}

CheckpointerOptions options_for(const std::string& root, bool async) {
  CheckpointerOptions options;
  options.dir = root;
  options.async = async;
  options.retention = {1, 0};
  options.best_metric = "eval/loss";
  options.best_is_max = false;
  return options;
}

CheckpointContents with_loss(std::int64_t step, double loss) {
  CheckpointContents contents = sample(static_cast<float>(step), step);
  contents.state["metrics"] = {{"eval/loss", loss}};
  return contents;
}

TEST_F(CheckpointStoreTest, CheckpointerKeepsBestAndLatestUnderRetention) {
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "async" : "sync");
    fs::remove_all(root_);
    Checkpointer checkpointer(options_for(root(), async));
    for (const auto& [step, loss] : std::vector<std::pair<int, double>>{{1, 0.5}, {2, 0.3}, {3, 0.4}, {4, 0.35}}) {
      checkpointer.save(with_loss(step, loss));
    }
    EXPECT_EQ(checkpointer.wait(), "v000004");
    const CheckpointStore& store = checkpointer.store();
    EXPECT_EQ(store.aliases().at("best"), "v000002");
    EXPECT_THAT(version_names(store), ElementsAre("v000002", "v000004")) << "keep_last = 1 plus the best version";
    expect_same(store.load("best"), with_loss(2, 0.3));
    expect_same(store.load("latest"), with_loss(4, 0.35));
  }
}

TEST_F(CheckpointStoreTest, CheckpointerReportsEachPublishedVersionWithItsManifestAndAliases) {
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "async" : "sync");
    fs::remove_all(root_);
    std::vector<PublishedCheckpoint> published;
    Checkpointer checkpointer(options_for(root(), async),
                              [&](const PublishedCheckpoint& p) { published.push_back(p); });
    checkpointer.save(with_loss(1, 0.5));
    checkpointer.save(with_loss(2, 0.7));
    checkpointer.wait();
    ASSERT_EQ(published.size(), 2u);
    EXPECT_EQ(published[1].version, "v000002");
    EXPECT_EQ(published[1].step, 2);
    EXPECT_EQ(published[1].store, fs::absolute(root_).lexically_normal().string());
    std::ifstream in(root_ / "versions" / "v000002" / "manifest.json", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(published[1].manifest, bytes);
    EXPECT_EQ(published[1].manifest_sha256, sha256_hex(bytes));
    // After retention and `best`: the first version stays best (lower loss), the second is latest.
    EXPECT_EQ(published[1].aliases, (std::map<std::string, std::string>{{"best", "v000001"}, {"latest", "v000002"}}));
  }
}

TEST_F(CheckpointStoreTest, CheckpointerHoldsTheWriterLock) {
  Checkpointer first(options_for(root(), false));
  EXPECT_THAT([&] { Checkpointer second(options_for(root(), false)); },
              ThrowsMessage<Error>(HasSubstr("in use by another job")));
}

TEST_F(CheckpointStoreTest, FailedSaveStopsOrContinuesAsConfiguredAndKeepsEarlierVersions) {
  for (const bool async : {false, true}) {
    for (const bool stop : {true, false}) {
      SCOPED_TRACE(std::string(async ? "async" : "sync") + (stop ? " stop" : " continue"));
      fs::remove_all(root_);
      CheckpointerOptions options = options_for(root(), async);
      options.stop_on_error = stop;
      options.retention = {};
      Checkpointer checkpointer(options);
      checkpointer.save(with_loss(1, 0.5));
      checkpointer.wait();
      CheckpointContents big = with_loss(2, 0.1);
      big.blobs["optimizer.pt"] = std::string(200000, 'x');
      {
        FileSizeLimit limit(64 * 1024);  // "disk full" for the new version's blob
        const auto save_and_wait = [&] {
          checkpointer.save(big);
          checkpointer.wait();
        };
        if (stop) {
          EXPECT_THAT(save_and_wait, ThrowsMessage<Error>(HasSubstr(root())));
        } else {
          EXPECT_NO_THROW(save_and_wait());
        }
      }
      EXPECT_EQ(checkpointer.wait(), "v000001");
      checkpointer.save(with_loss(3, 0.4));  // the store works again once there is space
      EXPECT_EQ(checkpointer.wait(), "v000002");
      expect_same(checkpointer.store().load("v1"), with_loss(1, 0.5));
    }
  }
}

TEST(BuildInfoTest, NamesTheCommitAndTheLibraryVersions) {
  const nlohmann::json info = build_info();
  for (const char* library : {"hdf5", "libtorch"}) {
    EXPECT_TRUE(std::regex_match(info.at(library).get<std::string>(), std::regex(R"(\d+\.\d+\.\d+)"))) << info;
  }
  EXPECT_FALSE(info.at("mpi").get<std::string>().empty()) << info;
  EXPECT_TRUE(std::regex_match(info.at("git_commit").get<std::string>(), std::regex("[0-9a-f]{40}|unknown"))) << info;
}

TEST_F(CheckpointStoreTest, LineageFollowsParentsAcrossStoresAndNamesAChangedOrMissingOne) {
  const auto first = open_checkpoint_store(root() + "/first");
  const auto second = open_checkpoint_store(root() + "/second");
  CheckpointContents fresh = sample(1.0f, 5);
  fresh.state["parent"] = nullptr;
  first->publish(fresh);
  const CheckpointContents loaded = first->load("latest");
  EXPECT_EQ(loaded.store, (root_ / "first").string());
  EXPECT_EQ(loaded.manifest_sha256, sha256_hex(first->manifest("v1")));
  CheckpointContents child = sample(2.0f, 3);
  child.state["config"]["optimizer.lr"] = 0.01;
  child.state["parent"] = parent_record(loaded, "init-from");
  second->publish(child);

  std::vector<Generation> chain = trace_lineage(*second, "latest");
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].store, (root_ / "second").string());
  EXPECT_EQ(chain[1].store, (root_ / "first").string());
  EXPECT_EQ(chain[1].version, "v000001");
  EXPECT_EQ(chain[1].problem, "");
  ASSERT_EQ(chain[0].config_changes.size(), 1u);
  EXPECT_EQ(chain[0].config_changes[0].key, "optimizer.lr");
  EXPECT_EQ(chain[0].config_changes[0].before, 0.1);
  EXPECT_EQ(chain[0].config_changes[0].after, 0.01);
  EXPECT_TRUE(chain[1].config_changes.empty()) << "the first version has no parent to differ from";

  std::ofstream(root_ / "first" / "versions" / "v000001" / "manifest.json", std::ios::app) << "\n";
  chain = trace_lineage(*second, "latest");
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_THAT(chain[1].problem, HasSubstr("the version was replaced or changed since"));

  fs::remove_all(root_ / "first");
  chain = trace_lineage(*second, "latest");
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_THAT(chain[1].problem, HasSubstr("cannot be read: no checkpoint version v000001 in " + root() + "/first"));
}

}  // namespace
}  // namespace dpt::checkpoint
