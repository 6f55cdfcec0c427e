// ShmAllreduce: the MPI backend's all-reduce when every rank runs on one node (and its in-node stages across nodes). The ranks map one shared-memory
// object, a segment each; a rank sums its slice of the tensor by reading the other ranks' segments directly and
// copies the other slices' results from their owners, with no transport copy and no system call in between.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <mpi.h>

#include "distributed/node_segment.h"

namespace dpt::distributed {

class ShmAllreduce {
 public:
  // Collective over `comm`. Each rank's segment holds two buffers of `buffer_bytes`, used in turn. nullptr on
  // every rank when the ranks span several nodes, or when the memory cannot be had; then `why_not` (when given)
  // says why on the ranks that know.
  static std::unique_ptr<ShmAllreduce> create(MPI_Comm comm, std::size_t buffer_bytes,
                                              std::string* why_not = nullptr);
  ~ShmAllreduce();
  ShmAllreduce(const ShmAllreduce&) = delete;
  ShmAllreduce& operator=(const ShmAllreduce&) = delete;

  // The dtypes it sums: floating (16-bit ones in float32, rounded once), 8 to 64-bit integers.
  static bool supports(const at::Tensor& tensor);

  // Sums the contiguous host tensor over the ranks, in place, identical on every rank. Collective: every rank
  // calls it with the same sizes in the same order, from one thread. `meet` is called once all of this rank's
  // contribution is visible to the others; it must return only when every rank has called it (a barrier).
  void sum(const at::Tensor& tensor, const std::function<void()>& meet);

  // Copies rank `root`'s contiguous host tensor (any dtype) to the others, through root's buffers. Collective, as
  // sum(); `meet` is called once root's first piece is visible and must return only when every rank has called it.
  void broadcast(const at::Tensor& tensor, int root, const std::function<void()>& meet);

 private:
  ShmAllreduce(MPI_Comm comm, std::unique_ptr<NodeSegment> segment, int ranks, std::size_t buffer_bytes);
  void barrier();
  void sync(bool& met, const std::function<void()>& meet);
  char* buffer(int rank, int parity) const;

  MPI_Comm comm_;
  std::unique_ptr<NodeSegment> segment_;  // every rank's two buffers, in rank order
  int ranks_;
  int rank_ = 0;
  std::size_t buffer_bytes_;
  int parity_ = 0;  // which of the two buffers the next piece uses
};

}  // namespace dpt::distributed
