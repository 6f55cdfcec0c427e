// PeerProbe: every rank answers a TCP connection with a line saying what it is doing, so that a rank whose
// collective times out can tell the ranks on other nodes that are alive and elsewhere from the ones it cannot reach
// at all (a cut link, a dead host): the node-local progress board cannot see past its node.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <functional>
#include <vector>

#include <mpi.h>

namespace dpt::distributed {

class PeerProbe {
 public:
  // Collective over `comm`: each rank listens on the IPv4 address `address()` gives (port chosen by the system) and
  // learns every rank's host name, address and port. `status` is called on the probe's own thread for each
  // connection and must be thread-safe. Throws a dpt::Error when this rank cannot listen (`address` threw, or the
  // socket failed), after the exchange, so that no rank is left waiting in it.
  PeerProbe(MPI_Comm comm, const std::function<std::string()>& address, std::function<std::string()> status);
  ~PeerProbe();
  PeerProbe(const PeerProbe&) = delete;
  PeerProbe& operator=(const PeerProbe&) = delete;

  struct Answer {
    int rank = 0;
    bool reached = false;
    std::string text;  // the rank's status line when reached, else why not ("no answer within 2 s", "refused")
  };
  // Connects to each of `ranks` at once and waits up to timeout_s in all for their status lines.
  std::vector<Answer> ask(const std::vector<int>& ranks, double timeout_s) const;

  const std::string& host(int rank) const { return hosts_.at(static_cast<std::size_t>(rank)); }
  const std::string& address(int rank) const { return addresses_.at(static_cast<std::size_t>(rank)); }

 private:
  void serve();

  std::function<std::string()> status_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: writing to it ends serve()
  std::vector<std::string> hosts_;
  std::vector<std::string> addresses_;
  std::vector<int> ports_;
  std::thread thread_;
};

}  // namespace dpt::distributed
