// NcclBackend: collectives over NCCL on CUDA tensors, on a stream of its own ordered by events against the
// caller's current stream; a timeout aborts the communicator (ncclCommAbort). Built only when CUDA and NCCL are
// found; this header names no CUDA or NCCL type.
#pragma once

#include <memory>

#include "distributed/backend.h"
#include "distributed/store.h"

namespace dpt::distributed {

class NcclBackend final : public Backend {
 public:
  // Collective over all ranks (ncclCommInitRank): rank 0 creates the NCCL unique id and sets it in `store`, the
  // others get it from there. Rank 0's constructor returns only once every rank has joined, so rank 0 may drop
  // its store (and the server a TcpStore hosts) as soon as it returns.
  // `device`: the CUDA device the model lives on (distributed::model_device's index), or a local rank: either
  // is taken modulo the visible devices, the same rule as model_device's.
  // A wait() longer than timeout_s aborts the communicator and throws a dpt::Error naming the collective.
  NcclBackend(Store& store, int rank, int world_size, int device, double timeout_s = 300.0);
  ~NcclBackend() override;
  NcclBackend(const NcclBackend&) = delete;
  NcclBackend& operator=(const NcclBackend&) = delete;

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  // The CUDA device index this rank's tensors must live on.
  int device() const;
  // Where a rank whose collective timed out tells the others and learns which ranks never reached one (they are
  // named in the error). The store's own timeout bounds that wait (a few seconds: ranks stuck in NCCL time out
  // within about the same ddp.timeout_s). Without one, the error only names the collective.
  void report_stalls_through(std::shared_ptr<Store> peers);

  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;
  // ncclReduceScatter / ncclAllGather in place (this rank's shard is its part of the receive buffer).
  std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op) override;
  std::shared_ptr<Work> all_gather(at::Tensor& flat) override;

 private:
  struct Impl;
  class NcclWork;
  int rank_;
  int world_size_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::distributed
