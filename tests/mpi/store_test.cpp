// Stores across real ranks: the MPI store carries rank 0's values to every rank, a file store in a shared
// directory carries a value from the last rank to the others, and misuse is the same clear error on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/check.h"
#include "distributed/store.h"
#include "mpi_test_env.h"

namespace dpt::distributed {
namespace {

std::string unique_id_like() {
  std::string id(128, '\0');
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(255 - i);
  return id;
}

TEST(MpiStore, EveryRankGetsWhatRankZeroSet) {
  MpiStore store(MPI_COMM_WORLD, 0, 60.0);
  if (testing::runtime().rank() == 0) {
    store.set("nccl/unique_id", unique_id_like());
    store.set("empty", "");
  }
  store.wait({"nccl/unique_id", "empty"});
  EXPECT_EQ(store.get("nccl/unique_id"), unique_id_like());
  EXPECT_EQ(store.get("empty"), "");
}

TEST(MpiStore, AKeyRankZeroNeverSetIsAnErrorOnEveryRank) {
  MpiStore store(MPI_COMM_WORLD, 0, 60.0);
  try {
    store.get("never");
    FAIL() << "get of an unset key returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key 'never' was not set on rank 0"), std::string::npos) << e.what();
  }
  if (testing::runtime().rank() != 0) {
    EXPECT_THROW(store.set("mine", "x"), Error);
  }
}

TEST(FileStore, AValueSetByTheLastRankReachesEveryRank) {
  const int last = testing::runtime().world_size() - 1;
  FileStore store(testing::scratch_dir() + "/store", 60.0);
  if (testing::runtime().rank() == last) store.set("from/last", "rank " + std::to_string(last));
  EXPECT_EQ(store.get("from/last"), "rank " + std::to_string(last));
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace dpt::distributed
