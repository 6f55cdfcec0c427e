// MpiExchange: collective byte exchanges over an MPI communicator (every rank calls them in the same order), each
// bounded by a timeout; not a Store, whose operations any process may call at any time.
#pragma once

#include <string>

#include <mpi.h>

namespace dpt::distributed {

class MpiExchange {
 public:
  // Duplicates `comm` (collective over it), so that its broadcasts never match another part's collectives.
  explicit MpiExchange(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 300.0);
  ~MpiExchange();
  MpiExchange(const MpiExchange&) = delete;
  MpiExchange& operator=(const MpiExchange&) = delete;

  // Collective: every rank returns the root's `bytes` (the others' are ignored). A rank whose root has not joined
  // within timeout_s() throws a dpt::Error naming the root; the broadcast it started cannot be withdrawn, so after
  // that error the job is expected to end.
  std::string broadcast_bytes(const std::string& bytes, int root);

  int rank() const { return rank_; }
  int size() const { return size_; }
  double timeout_s() const { return timeout_s_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  double timeout_s_;
};

}  // namespace dpt::distributed
