// NodeSegment: one shared-memory object that every rank of a communicator maps, when all of them run on one node.
// Rank 0 creates it and reserves its memory at once (a full /dev/shm is an error here, not a SIGBUS later), and
// unlinks it as soon as every rank has mapped it: nothing is left in /dev/shm, whatever happens to the job.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <mpi.h>

namespace dpt::distributed {

class NodeSegment {
 public:
  // Collective over `comm`: `bytes` of zeroed memory shared by every rank, named /dptrain-<purpose>-... while
  // the ranks map it. nullptr on every rank when the ranks span several nodes, or when the memory cannot be had;
  // then `why_not` (when given) says why on the ranks that know (nothing when the ranks span nodes).
  static std::unique_ptr<NodeSegment> create(MPI_Comm comm, std::size_t bytes, const char* purpose,
                                             std::string* why_not = nullptr);
  ~NodeSegment();
  NodeSegment(const NodeSegment&) = delete;
  NodeSegment& operator=(const NodeSegment&) = delete;

  char* data() const { return data_; }

 private:
  NodeSegment(char* data, std::size_t bytes) : data_(data), bytes_(bytes) {}

  char* data_;
  std::size_t bytes_;
};

}  // namespace dpt::distributed
