// LocalBackend: the collectives of a world of one.
#include "distributed/local_backend.h"

#include "core/check.h"

namespace dpt::distributed {

std::shared_ptr<Work> LocalBackend::allreduce(at::Tensor& tensor, ReduceOp op) {
  return std::make_shared<CompletedWork>();
}

std::shared_ptr<Work> LocalBackend::broadcast(at::Tensor& tensor, int root) {
  DPT_CHECK(root == 0, "local backend: broadcast root ", root, " does not exist in a world of one rank");
  return std::make_shared<CompletedWork>();
}

std::shared_ptr<Work> LocalBackend::allgather(const at::Tensor& input, at::Tensor& output) {
  DPT_CHECK(output.numel() == input.numel(), "local backend: allgather output must hold one copy of the input (",
            input.numel(), " elements), it holds ", output.numel());
  output.view_as(input).copy_(input);
  return std::make_shared<CompletedWork>();
}

std::shared_ptr<Work> LocalBackend::reduce_scatter(at::Tensor& flat, ReduceOp op) {
  return std::make_shared<CompletedWork>();
}

std::shared_ptr<Work> LocalBackend::all_gather(at::Tensor& flat) { return std::make_shared<CompletedWork>(); }

std::shared_ptr<Work> LocalBackend::barrier() { return std::make_shared<CompletedWork>(); }

}  // namespace dpt::distributed
