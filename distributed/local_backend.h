// LocalBackend: world size 1, no MPI; every collective is the identity and completes at once.
#pragma once

#include "distributed/backend.h"

namespace dpt::distributed {

class LocalBackend final : public Backend {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;
  std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op) override;
  std::shared_ptr<Work> all_gather(at::Tensor& flat) override;
};

}  // namespace dpt::distributed
