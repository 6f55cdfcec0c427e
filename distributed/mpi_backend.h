// MpiBackend: collectives over MPI on host tensors, issued in submission order by one communication thread;
// all-reduces through shared memory when every rank runs on one node.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <mpi.h>

#include "distributed/backend.h"

namespace dpt::distributed {

class MpiBackend final : public Backend {
 public:
  // Duplicates `comm` (collective over it). A wait() longer than timeout_s throws a dpt::Error naming the
  // collective, so a dead or diverged rank ends the job instead of hanging it. With every rank on one node,
  // all-reduces go through 2 x shared_memory_bytes of shared memory per rank (ShmAllreduce; 0: MPI_Allreduce).
  explicit MpiBackend(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 300.0,
                      std::size_t shared_memory_bytes = kDefaultSharedMemoryBytes);
  ~MpiBackend() override;

  static constexpr std::size_t kDefaultSharedMemoryBytes = std::size_t{16} << 20;

  std::string name() const override { return "mpi"; }
  // Whether all-reduces go through shared memory; when they were asked to and cannot, why not.
  bool uses_shared_memory() const;
  const std::string& shared_memory_unavailable() const { return shared_memory_unavailable_; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  // Meets the other ranks in an MPI_Ibarrier polled at intervals before the all-reduce (see Shared).
  std::shared_ptr<Work> allreduce_overlapped(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;

 private:
  class MpiWork;
  struct Shared;
  std::shared_ptr<Work> submit(std::string what, std::function<void(Shared&)> op);
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op, bool rendezvous);

  int rank_ = 0;
  int world_size_ = 1;
  double timeout_s_;
  std::string shared_memory_unavailable_;
  std::uint64_t submitted_ = 0;
  // Everything the communication thread touches, owned jointly with it: a backend destroyed while its thread
  // is stuck in a collective (a rank hangs, and the job is ending) leaves the thread behind instead of waiting.
  std::shared_ptr<Shared> shared_;
  std::thread comm_thread_;
};

}  // namespace dpt::distributed
