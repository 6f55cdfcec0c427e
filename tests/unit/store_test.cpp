// FileStore: a value set by one thread is read whole by another, keys with any characters work, and a key that
// is never set ends in an error naming it instead of a hang.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/check.h"
#include "distributed/store.h"

namespace dpt::distributed {
namespace {

std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dptrain-store-" + name + "-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                    "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(FileStore, GetWaitsForAValueSetByAnotherThread) {
  const std::string dir = fresh_dir("get");
  FileStore reader(dir, 30.0);
  FileStore writer(dir, 30.0);
  // Binary, with NUL bytes, like an NCCL unique id.
  std::string id(128, '\0');
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(i * 7);
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    writer.set("nccl/unique_id", id);
  });
  EXPECT_EQ(reader.get("nccl/unique_id"), id);
  setter.join();
  std::filesystem::remove_all(dir);
}

TEST(FileStore, WaitReturnsOnceEveryKeyIsSetAndLaterSetsReplaceValues) {
  const std::string dir = fresh_dir("wait");
  FileStore store(dir, 30.0);
  std::thread setter([&] {
    for (int r = 0; r < 4; ++r) store.set("rank " + std::to_string(r) + "/ready?", "yes");
  });
  store.wait({"rank 0/ready?", "rank 1/ready?", "rank 2/ready?", "rank 3/ready?"});
  setter.join();
  store.set("rank 0/ready?", "again");
  EXPECT_EQ(store.get("rank 0/ready?"), "again");
  EXPECT_EQ(store.get("rank 3/ready?"), "yes");
  std::filesystem::remove_all(dir);
}

TEST(FileStore, AKeyNeverSetIsAnErrorNamingItAfterTheTimeout) {
  const std::string dir = fresh_dir("timeout");
  FileStore store(dir, 0.2);
  store.set("present", "1");
  try {
    store.get("nccl/unique_id");
    FAIL() << "get of a missing key returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'nccl/unique_id' was not set within 0.2 s"), std::string::npos) << e.what();
  }
  try {
    store.wait({"present", "missing"});
    FAIL() << "wait for a missing key returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'missing'"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("'present'"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dpt::distributed
