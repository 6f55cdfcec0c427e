// Stores and exchanges across real ranks: a TcpStore hosted by rank 0 carries every rank's value to every rank,
// rendezvous_store finds the store the environment names (or hosts one and announces it over MPI), a file store
// carries a value from the last rank, and MpiExchange broadcasts bytes and times out when its root never comes.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstdlib>

#include "core/check.h"
#include "distributed/mpi_exchange.h"
#include "distributed/rendezvous.h"
#include "distributed/store.h"
#include "distributed/tcp_store.h"
#include "mpi_test_env.h"
#include "tests/reserved_port.h"

namespace dpt::distributed {
namespace {

std::string unique_id_like() {
  std::string id(128, '\0');
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(255 - i);
  return id;
}

int rank() { return testing::runtime().rank(); }
int world_size() { return testing::runtime().world_size(); }

// A loopback port that was free a moment ago, the same on every rank (picked by rank 0).
int free_loopback_port() {
  int port = rank() == 0 ? testing::ReservedPort().port() : 0;
  MPI_Bcast(&port, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return port;
}

// The environment variables rendezvous_store reads, set for one test and cleared after it.
class StoreEnvironment {
 public:
  StoreEnvironment(std::initializer_list<std::pair<const char*, std::string>> values) {
    clear();
    for (const auto& [name, value] : values) ::setenv(name, value.c_str(), 1);
  }
  ~StoreEnvironment() { clear(); }
  StoreEnvironment(const StoreEnvironment&) = delete;
  StoreEnvironment& operator=(const StoreEnvironment&) = delete;

 private:
  static void clear() {
    for (const char* name : {"DPTRAIN_STORE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
  }
};

// What NcclBackend does with the store: rank 0 sets the id, the others get it; rank 0 keeps its store (and the
// server it may host) until every rank has read.
void check_rank0_id_reaches_every_rank(Store& store) {
  if (rank() == 0) {
    store.set("nccl/unique_id/0", unique_id_like());
  } else {
    EXPECT_EQ(store.get("nccl/unique_id/0"), unique_id_like());
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(TcpStore, EveryRankReadsWhatEveryRankSet) {
  int port = 0;
  std::unique_ptr<TcpStore> store;
  if (rank() == 0) {
    store = std::make_unique<TcpStore>("127.0.0.1:0", true, 60.0);
    port = store->address().port;
  }
  MPI_Bcast(&port, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rank() != 0) store = std::make_unique<TcpStore>("127.0.0.1:" + std::to_string(port), false, 60.0);
  store->set("rank/" + std::to_string(rank()), std::to_string(rank()) + std::string(3, '\0'));
  for (int r = 0; r < world_size(); ++r) {
    EXPECT_EQ(store->get("rank/" + std::to_string(r)), std::to_string(r) + std::string(3, '\0'));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(RendezvousStore, WithoutAnyNameRankZeroHostsOnTheLoopbackAndMpiAnnouncesIt) {
  StoreEnvironment env{};
  const auto store = rendezvous_store(testing::runtime(), 60.0);
  EXPECT_EQ(store->name().rfind("TCP store 127.0.0.1:", 0), 0u) << store->name();
  check_rank0_id_reaches_every_rank(*store);
}

TEST(RendezvousStore, DptrainStoreTcpIsHostedByRankZero) {
  const std::string address = "127.0.0.1:" + std::to_string(free_loopback_port());
  StoreEnvironment env{{"DPTRAIN_STORE", "tcp://" + address}};
  const auto store = rendezvous_store(testing::runtime(), 60.0);
  EXPECT_EQ(store->name(), "TCP store " + address);
  check_rank0_id_reaches_every_rank(*store);
}

TEST(RendezvousStore, MasterAddrAndPortNameATcpStore) {
  const std::string port = std::to_string(free_loopback_port());
  StoreEnvironment env{{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}};
  const auto store = rendezvous_store(testing::runtime(), 60.0);
  EXPECT_EQ(store->name(), "TCP store 127.0.0.1:" + port);
  check_rank0_id_reaches_every_rank(*store);
}

TEST(RendezvousStore, DptrainStoreFileIsAFileStore) {
  const std::string dir = testing::scratch_dir() + "/rendezvous";
  StoreEnvironment env{{"DPTRAIN_STORE", "file://" + dir}};
  const auto store = rendezvous_store(testing::runtime(), 60.0);
  EXPECT_EQ(store->name(), "file:" + dir);
  check_rank0_id_reaches_every_rank(*store);
}

TEST(RendezvousStore, AnUnknownStoreIsAnErrorNamingIt) {
  StoreEnvironment env{{"DPTRAIN_STORE", "redis://127.0.0.1:6379"}};
  try {
    rendezvous_store(testing::runtime(), 60.0);
    FAIL() << "an unknown store was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("DPTRAIN_STORE='redis://127.0.0.1:6379' names no store"),
              std::string::npos)
        << e.what();
  }
}

TEST(FileStore, AValueSetByTheLastRankReachesEveryRank) {
  const int last = world_size() - 1;
  FileStore store(testing::scratch_dir() + "/store", 60.0);
  if (rank() == last) store.set("from/last", "rank " + std::to_string(last));
  EXPECT_EQ(store.get("from/last"), "rank " + std::to_string(last));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(MpiExchange, EveryRankGetsTheRootsBytes) {
  MpiExchange exchange(MPI_COMM_WORLD, 60.0);
  const int last = world_size() - 1;
  EXPECT_EQ(exchange.broadcast_bytes(rank() == 0 ? unique_id_like() : "ignored", 0), unique_id_like());
  EXPECT_EQ(exchange.broadcast_bytes(rank() == last ? "from the last rank" : "", last), "from the last rank");
  EXPECT_EQ(exchange.broadcast_bytes("", 0), "");
}

TEST(MpiExchange, ARankWhoseRootNeverComesIsAnErrorAfterTheTimeout) {
  MpiExchange exchange(MPI_COMM_WORLD, 1.0);
  if (rank() != 0) {
    const auto start = std::chrono::steady_clock::now();
    try {
      exchange.broadcast_bytes("", 0);
      FAIL() << "a broadcast without its root returned";
    } catch (const Error& e) {
      EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
      EXPECT_NE(std::string(e.what()).find("waited 1 s for the length of a broadcast from rank 0"), std::string::npos)
          << e.what();
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // The root comes late with an empty value, which completes the others' abandoned broadcast: in step again.
  if (rank() == 0) exchange.broadcast_bytes("", 0);
  EXPECT_EQ(exchange.broadcast_bytes(rank() == 0 ? "in step" : "", 0), "in step");
}

}  // namespace
}  // namespace dpt::distributed
