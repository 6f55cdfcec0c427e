// The Store contract, run against FileStore and TcpStore with ranks as threads of one process: what one rank sets
// reaches every other, whole and binary; get waits for a later set; a key never set, a server never started or
// one that goes away ends in an error naming what is missing instead of a hang.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "core/check.h"
#include "distributed/store.h"
#include "distributed/tcp_store.h"
#include "tests/reserved_port.h"

namespace dpt::distributed {
namespace {

using Stores = std::vector<std::unique_ptr<Store>>;

// How each implementation gives `ranks` processes (here threads) one store each, all reaching the same values.
struct StoreKind {
  std::string name;
  std::function<Stores(const std::string& dir, int ranks, double timeout_s)> open;
};

Stores file_stores(const std::string& dir, int ranks, double timeout_s) {
  Stores stores;
  for (int r = 0; r < ranks; ++r) stores.push_back(std::make_unique<FileStore>(dir, timeout_s));
  return stores;
}

// Rank 0 hosts the server on a free loopback port; every rank is a client.
Stores tcp_stores(const std::string&, int ranks, double timeout_s) {
  Stores stores;
  auto host = std::make_unique<TcpStore>("127.0.0.1:0", true, timeout_s);
  const std::string address = host->address().str();
  stores.push_back(std::move(host));
  for (int r = 1; r < ranks; ++r) stores.push_back(std::make_unique<TcpStore>(address, false, timeout_s));
  return stores;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `body(rank)` on one thread per rank; rethrows the first exception once all have ended.
void run_ranks(int ranks, const std::function<void(int)>& body) {
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// Every byte value, NUL included, like an NCCL unique id (128 raw bytes) and more.
std::string all_bytes(int salt) {
  std::string bytes(256, '\0');
  for (int i = 0; i < 256; ++i) bytes[i] = static_cast<char>(i + salt);
  return bytes;
}

std::string error_of(const std::function<void()>& op) {
  try {
    op();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "the operation returned instead of throwing";
  return "";
}

// gtest names a failing case's parameter with this.
void PrintTo(const StoreKind& kind, std::ostream* out) { *out << kind.name; }

class StoreContract : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("dptrain-store-" + std::to_string(::getpid()) + "-" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
               .string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Stores open(int ranks, double timeout_s) { return GetParam().open(dir_, ranks, timeout_s); }

  std::string dir_;
};

TEST_P(StoreContract, EveryRankReadsWhatEveryRankSetConcurrently) {
  constexpr int kRanks = 4;
  Stores stores = open(kRanks, 30.0);
  std::vector<std::string> keys;
  for (int r = 0; r < kRanks; ++r) keys.push_back("rank/" + std::to_string(r));
  run_ranks(kRanks, [&](int rank) {
    stores[rank]->set(keys[rank], all_bytes(rank));
    stores[rank]->wait(keys);
    for (int other = 0; other < kRanks; ++other) EXPECT_EQ(stores[rank]->get(keys[other]), all_bytes(other));
  });
}

TEST_P(StoreContract, GetBeforeSetWaitsForTheValue) {
  Stores stores = open(2, 30.0);
  run_ranks(2, [&](int rank) {
    if (rank == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      stores[0]->set("nccl/unique_id", all_bytes(7).substr(0, 128));
    } else {
      EXPECT_EQ(stores[1]->get("nccl/unique_id"), all_bytes(7).substr(0, 128));
      stores[1]->wait({"nccl/unique_id"});
    }
  });
}

TEST_P(StoreContract, ValuesAreBinaryAnyKeyWorksAndALaterSetReplacesAValue) {
  Stores stores = open(2, 30.0);
  const std::string large(3 << 20, '\0');  // larger than a socket buffer
  stores[0]->set("nul", all_bytes(0));
  stores[0]->set("empty", "");
  stores[0]->set("large", large);
  stores[0]->set("rank 0/ready? 100%", "yes");
  EXPECT_EQ(stores[1]->get("nul"), all_bytes(0));
  EXPECT_EQ(stores[1]->get("empty"), "");
  EXPECT_EQ(stores[1]->get("large"), large);
  EXPECT_EQ(stores[1]->get("rank 0/ready? 100%"), "yes");
  stores[1]->set("rank 0/ready? 100%", "again");
  EXPECT_EQ(stores[0]->get("rank 0/ready? 100%"), "again");
}

TEST_P(StoreContract, AKeyNeverSetIsAnErrorNamingItAfterTheTimeout) {
  Stores stores = open(2, 0.3);
  stores[0]->set("present", "1");
  const auto start = std::chrono::steady_clock::now();
  const std::string get_error = error_of([&] { stores[1]->get("nccl/unique_id"); });
  EXPECT_GE(seconds_since(start), 0.3);
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_NE(get_error.find("no value for key 'nccl/unique_id' within 0.3 s"), std::string::npos) << get_error;
  const std::string wait_error = error_of([&] { stores[1]->wait({"present", "missing"}); });
  EXPECT_NE(wait_error.find("'missing'"), std::string::npos) << wait_error;
  EXPECT_EQ(wait_error.find("'present'"), std::string::npos) << wait_error;
  // The store still works after a timeout.
  EXPECT_EQ(stores[1]->get("present"), "1");
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract,
                         ::testing::Values(StoreKind{"FileStore", file_stores}, StoreKind{"TcpStore", tcp_stores}),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

using testing::ReservedPort;

TEST(TcpStore, AClientOfAServerNeverStartedIsAnErrorWithinTheTimeout) {
  ReservedPort port;
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([&] { TcpStore client(port.address(), false, 0.5); });
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_NE(error.find("TCP store " + port.address() + ": cannot connect within 0.5 s"), std::string::npos) << error;
  EXPECT_NE(error.find("(rank 0) running"), std::string::npos) << error;
}

TEST(TcpStore, AClientStartedBeforeTheServerConnectsOnceItIsUp) {
  ReservedPort port;
  const std::string address = port.address();
  port.release();
  run_ranks(2, [&](int rank) {
    if (rank == 1) {
      TcpStore client(address, false, 30.0);
      EXPECT_EQ(client.get("key"), "value");
      client.set("done", "");  // the host's server stays up until the client has read
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    TcpStore host(address, true, 30.0);
    host.set("key", "value");
    host.wait({"done"});
  });
}

TEST(TcpStore, DestroyingTheServerWhileAClientWaitsIsAnErrorNotAHang) {
  auto host = std::make_unique<TcpStore>("127.0.0.1:0", true, 30.0);
  TcpStore client(host->address().str(), false, 30.0);
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  std::thread waiter([&] { error = error_of([&] { client.get("never"); }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  host.reset();
  waiter.join();
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_NE(error.find("broke during the get of key 'never'"), std::string::npos) << error;
}

TEST(TcpStore, AnOperationAfterTheServerIsGoneIsAnErrorNotAHang) {
  auto host = std::make_unique<TcpStore>("127.0.0.1:0", true, 30.0);
  TcpStore client(host->address().str(), false, 30.0);
  client.set("before", "1");
  host.reset();
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([&] { client.set("after", "2"); });
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_NE(error.find("has exited or crashed"), std::string::npos) << error;
}

TEST(TcpAddress, ParsesHostAndPortAndNamesAMalformedAddress) {
  EXPECT_EQ(TcpAddress::parse("127.0.0.1:29500").port, 29500);
  EXPECT_EQ(TcpAddress::parse("[::1]:0").host, "::1");
  EXPECT_EQ(TcpAddress::parse("[::1]:7").str(), "[::1]:7");
  for (const std::string bad : {"127.0.0.1", ":29500", "host:", "host:port", "host:65536", "host:12x"}) {
    const std::string error = error_of([&] { TcpAddress::parse(bad); });
    EXPECT_NE(error.find("'" + bad + "' is not host:port"), std::string::npos) << error;
  }
  EXPECT_TRUE(TcpAddress::parse("127.0.0.1:0").is_own());
}

}  // namespace
}  // namespace dpt::distributed
