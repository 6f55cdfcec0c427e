// TcpStore: a Store that one process serves over TCP (a small server thread) to a client in every process, its
// own included; a tiny length-prefixed protocol carries SET, GET and WAIT.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/store.h"

namespace dpt::distributed {

// "host:port" (an IPv6 host in brackets: "[::1]:29500").
struct TcpAddress {
  std::string host;
  int port = 0;

  // Throws a dpt::Error naming `address` when it is not of that form.
  static TcpAddress parse(const std::string& address);
  std::string str() const;
  // Whether `host` is an address of this machine (one a socket can be bound to); resolves the name first.
  bool is_own() const;
};

class TcpStore final : public Store {
 public:
  // A client of the server at `address`. With `host_server`, this process first starts that server, listening on
  // `address` (port 0: an ephemeral port; address() then names the bound one). The constructor connects, retrying
  // while the server is not up yet, for up to timeout_s; every later operation is bounded by timeout_s too.
  TcpStore(const std::string& address, bool host_server, double timeout_s = 300.0);
  // Stops the server when this store hosts it: clients still waiting get an error, not a hang.
  ~TcpStore() override;
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  std::string name() const override { return "TCP store " + address_.str(); }
  // The server's address with its bound port: what the other processes connect to.
  const TcpAddress& address() const { return address_; }

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;

 private:
  class Server;
  struct Reply;

  void connect();
  // Sends one request and returns the server's reply; `what` ("get of key 'k'") goes into the error messages.
  Reply request(int op, const std::vector<std::string>& strings, const std::string& what);

  TcpAddress address_;
  std::unique_ptr<Server> server_;
  std::mutex mutex_;  // one request at a time on the connection, so threads may share one client
  int socket_ = -1;   // -1 after a request failed half-way (the connection is out of step): the next one reconnects
};

}  // namespace dpt::distributed
