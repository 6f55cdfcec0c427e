// ProgressBoard: where the communication thread of each rank on one node posts the collective it is running, so
// that a rank whose collective times out can say which ranks have not reached it, or reached a different one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <mpi.h>

#include "distributed/node_segment.h"

namespace dpt::distributed {

class ProgressBoard {
 public:
  // Collective over `comm`; nullptr on every rank when the ranks span several nodes or /dev/shm cannot be had.
  static std::unique_ptr<ProgressBoard> create(MPI_Comm comm);

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

  ProgressBoard(std::unique_ptr<NodeSegment> segment, int rank, int ranks)
      : segment_(std::move(segment)), rank_(rank), ranks_(ranks) {}
  Snapshot read(int rank) const;

  std::unique_ptr<NodeSegment> segment_;
  int rank_;
  int ranks_;
};

}  // namespace dpt::distributed
