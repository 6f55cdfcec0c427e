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

  // The two halves of sum() on their own, over a tensor of one equal shard per rank (Backend::reduce_scatter):
  // this rank's shard becomes the sum of every rank's values of it (the other shards are left as they were), and
  // every rank's shard is copied to the others. Collective and `meet` as for sum().
  void reduce_scatter(const at::Tensor& tensor, const std::function<void()>& meet);
  void all_gather(const at::Tensor& tensor, const std::function<void()>& meet);

  // Copies rank `root`'s contiguous host tensor (any dtype) to the others, through root's buffers. Collective, as
  // sum(); `meet` is called once root's first piece is visible and must return only when every rank has called it.
  void broadcast(const at::Tensor& tensor, int root, const std::function<void()>& meet);

 private:
  ShmAllreduce(MPI_Comm comm, std::unique_ptr<NodeSegment> segment, int ranks, std::size_t buffer_bytes);
  // Where rank k's slice of one piece lies: `offset` elements into the tensor, `slot` elements into a buffer.
  struct Slice {
    std::int64_t offset = 0;
    std::int64_t slot = 0;
    std::int64_t count = 0;
  };
  using Slices = std::vector<Slice>;  // one per rank
  // One piece's reduce-scatter half (this rank's slice summed from the others' buffers) and all-gather half (this
  // rank's slice copied to the others), through the buffers of the current parity; each synchronises once.
  void scatter_piece(const at::Tensor& tensor, const Slices& slices, const std::function<void()>& sync);
  void gather_piece(const at::Tensor& tensor, const Slices& slices, const std::function<void()>& sync);
  // Runs piece(slices, sync) over the pieces of a one-shard-per-rank tensor, flipping the parity after each.
  void for_shard_pieces(const at::Tensor& tensor, const std::function<void()>& meet,
                        const std::function<void(const Slices&, const std::function<void()>&)>& piece);
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
