// ProgressBoard: where the communication thread of each rank on one node posts the collective it is running, so
// that a rank whose collective times out can say which ranks of its node have not reached it, or reached a
// different one. Ranks on other nodes cannot be seen, and the account says so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "distributed/node_segment.h"

namespace dpt::distributed {

// Where one rank's communication thread is: the last collective it started, the last it finished (numbers 1, 2, ...
// in issue order, the same on every rank), and what the started one is.
struct CollectiveProgress {
  std::uint64_t started = 0;
  std::uint64_t finished = 0;
  std::string what;
};

// One clause of a timeout's account, for `who` ("rank 1", "rank 3 on node1") while this rank waits on collective
// `blocking` (`blocking_what`) on behalf of collective `number`, e.g. "rank 1 has not reached it (its last: #811,
// allgather of 64 bytes per rank, finished)".
std::string progress_clause(const std::string& who, const CollectiveProgress& other, std::uint64_t blocking,
                            const std::string& blocking_what, std::uint64_t number);

class ProgressBoard {
 public:
  // Collective over `comm`. `node` holds the ranks of `comm` that share this rank's node, this rank included
  // (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, ...)); they share one board. nullptr on the ranks of a node
  // where /dev/shm cannot be had.
  static std::unique_ptr<ProgressBoard> create(MPI_Comm comm, MPI_Comm node);

  // This rank starts, or has finished, its collective number `number` (1, 2, ... in issue order).
  void started(std::uint64_t number, const std::string& what);
  void finished(std::uint64_t number);

  // For a timeout of this rank's collective `number` (`what`): what the ranks of this node are doing, one
  // clause per rank (progress_clause), and, unless `others_accounted`, how many ranks on other nodes it cannot see.
  std::string whereabouts(std::uint64_t number, const std::string& what, bool others_accounted = false) const;

 private:
  using Snapshot = CollectiveProgress;

  ProgressBoard(std::unique_ptr<NodeSegment> segment, int slot, std::vector<int> ranks, int world_size)
      : segment_(std::move(segment)), slot_(slot), ranks_(std::move(ranks)), world_size_(world_size) {}
  Snapshot read(int slot) const;

  std::unique_ptr<NodeSegment> segment_;
  int slot_;                // this rank's slot: its rank within the node
  std::vector<int> ranks_;  // slot -> rank in the communicator
  int world_size_;
};

}  // namespace dpt::distributed
