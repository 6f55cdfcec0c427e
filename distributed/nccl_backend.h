// NcclBackend: collectives over NCCL on CUDA tensors, on a stream of its own ordered by events against the
// default stream. Built only when CUDA and NCCL are found; this header names no CUDA or NCCL type.
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
  // A wait() longer than timeout_s throws a dpt::Error naming the collective.
  NcclBackend(Store& store, int rank, int world_size, int device, double timeout_s = 300.0);
  ~NcclBackend() override;
  NcclBackend(const NcclBackend&) = delete;
  NcclBackend& operator=(const NcclBackend&) = delete;

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  // The CUDA device index this rank's tensors must live on.
  int device() const;

  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;

 private:
  struct Impl;
  class NcclWork;
  int rank_;
  int world_size_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::distributed
