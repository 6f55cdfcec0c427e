// rendezvous_store: the environment's store, or a TcpStore that rank 0 hosts on an address MPI announces.
#include "distributed/rendezvous.h"

#include <cstdlib>

#include "core/check.h"
#include "distributed/host_address.h"
#include "distributed/mpi_exchange.h"
#include "distributed/tcp_store.h"

namespace dpt::distributed {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// The address the ranks on other nodes connect to.
std::string reachable_address() {
  const std::string found = reachable_ipv4_address();
  DPT_CHECK(!found.empty(), "rank 0 has no network interface other than the loopback, but the ranks run on several ",
            "nodes: set DPTRAIN_STORE=tcp://ADDRESS:PORT with an address of rank 0 that every rank reaches");
  return found;
}

std::unique_ptr<Store> named_tcp_store(const Runtime& runtime, const std::string& address, const std::string& source,
                                       double timeout_s) {
  const TcpAddress parsed = TcpAddress::parse(address);
  DPT_CHECK(parsed.port > 0, source, " names port 0, but the ranks could not learn which port rank 0 got: name a ",
            "free port (e.g. 29500), or unset it so that rank 0 picks one and MPI announces it");
  return std::make_unique<TcpStore>(address, runtime.rank() == 0 && parsed.is_own(), timeout_s);
}

// Rank 0 starts the server and announces "host:port" (or "" when it could not start one, so that the others stop
// at once rather than after the timeout).
std::unique_ptr<Store> announced_tcp_store(const Runtime& runtime, double timeout_s) {
  const bool one_node = runtime.local_size() == runtime.world_size();
  if (!runtime.uses_mpi()) return std::make_unique<TcpStore>("127.0.0.1:0", true, timeout_s);
  MpiExchange exchange(MPI_COMM_WORLD, timeout_s);
  if (runtime.rank() != 0) {
    const std::string address = exchange.broadcast_bytes("", 0);
    DPT_CHECK(!address.empty(), "rank 0 could not host the rendezvous store: see its error");
    return std::make_unique<TcpStore>(address, false, timeout_s);
  }
  std::unique_ptr<TcpStore> store;
  try {
    store = std::make_unique<TcpStore>((one_node ? "127.0.0.1" : reachable_address()) + ":0", true, timeout_s);
  } catch (...) {
    exchange.broadcast_bytes("", 0);
    throw;
  }
  exchange.broadcast_bytes(store->address().str(), 0);
  return store;
}

}  // namespace

std::unique_ptr<Store> rendezvous_store(const Runtime& runtime, double timeout_s) {
  const std::string named = env("DPTRAIN_STORE");
  const std::string tcp = "tcp://";
  const std::string file = "file://";
  if (named.rfind(tcp, 0) == 0) return named_tcp_store(runtime, named.substr(tcp.size()), "DPTRAIN_STORE", timeout_s);
  if (named.rfind(file, 0) == 0 && named.size() > file.size()) {
    return std::make_unique<FileStore>(named.substr(file.size()), timeout_s);
  }
  DPT_CHECK(named.empty(), "DPTRAIN_STORE='", named, "' names no store: use tcp://HOST:PORT or file:///DIRECTORY");
  const std::string master_addr = env("MASTER_ADDR");
  const std::string master_port = env("MASTER_PORT");
  if (!master_addr.empty() && !master_port.empty()) {
    return named_tcp_store(runtime, master_addr + ":" + master_port, "MASTER_PORT", timeout_s);
  }
  return announced_tcp_store(runtime, timeout_s);
}

}  // namespace dpt::distributed
