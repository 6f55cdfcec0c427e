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

class ProgressBoard {
 public:
  // Collective over `comm`. `node` holds the ranks of `comm` that share this rank's node, this rank included
  // (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, ...)); they share one board. nullptr on the ranks of a node
  // where /dev/shm cannot be had.
  static std::unique_ptr<ProgressBoard> create(MPI_Comm comm, MPI_Comm node);

  // This rank starts, or has finished, its collective number `number` (1, 2, ... in issue order).
  void started(std::uint64_t number, const std::string& what);
  void finished(std::uint64_t number);

  // For a timeout of this rank's collective `number` (`what`): what the ranks are doing, one clause per rank,
  // e.g. "rank 1 has not reached it (its last: #811, allgather of 64 bytes per rank, finished)".
  std::string whereabouts(std::uint64_t number, const std::string& what) const;

 private:
  struct Snapshot {
    std::uint64_t started = 0;
    std::uint64_t finished = 0;
    std::string what;
  };

  ProgressBoard(std::unique_ptr<NodeSegment> segment, int slot, std::vector<int> ranks, int world_size)
      : segment_(std::move(segment)), slot_(slot), ranks_(std::move(ranks)), world_size_(world_size) {}
  Snapshot read(int slot) const;

  std::unique_ptr<NodeSegment> segment_;
  int slot_;                // this rank's slot: its rank within the node
  std::vector<int> ranks_;  // slot -> rank in the communicator
  int world_size_;
};

}  // namespace dpt::distributed
