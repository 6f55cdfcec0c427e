// MpiBackend: collectives over MPI on host tensors, issued in submission order by one communication thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <mpi.h>

#include "distributed/backend.h"

namespace dpt::distributed {

class MpiBackend final : public Backend {
 public:
  // Duplicates `comm` (collective over it). A wait() longer than timeout_s throws a dpt::Error naming the
  // collective, so a dead or diverged rank ends the job instead of hanging it.
  explicit MpiBackend(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 300.0);
  ~MpiBackend() override;

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  // Meets the other ranks in an MPI_Ibarrier polled at intervals before the all-reduce (see await_all_ranks).
  std::shared_ptr<Work> allreduce_overlapped(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;

 private:
  class MpiWork;
  std::shared_ptr<Work> submit(std::string what, std::function<void()> op);
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op, bool rendezvous);
  void run_queue();
  void await_all_ranks();

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  MPI_Op fp16_sum_ = MPI_OP_NULL;
  int rank_ = 0;
  int world_size_ = 1;
  double timeout_s_;
  std::uint64_t submitted_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::shared_ptr<MpiWork>, std::function<void()>>> queue_;
  bool stopping_ = false;
  std::thread comm_thread_;

  std::mutex poll_mutex_;
  std::condition_variable poll_wake_;
  int waiters_ = 0;  // callers blocked in wait(), guarded by poll_mutex_
};

}  // namespace dpt::distributed
