// GradientReducer: one flat gradient buffer, scaled in place by the fused scale_copy kernel and all-reduced.
#include "distributed/gradient_reducer.h"

#include "core/check.h"
#include "kernels/scale_copy.h"

namespace dpt::distributed {

GradientReducer::GradientReducer(std::vector<at::Tensor> parameters, Backend& backend)
    : parameters_(std::move(parameters)), backend_(backend) {
  DPT_CHECK(!parameters_.empty(), "the model has no trainable parameters");
  std::int64_t total = 0;
  for (const auto& p : parameters_) {
    DPT_CHECK(p.scalar_type() == parameters_[0].scalar_type() && p.device() == parameters_[0].device(),
              "all trainable parameters must share one dtype and device; found ", p.toString(), " and ",
              parameters_[0].toString());
    total += p.numel();
  }
  flat_ = at::zeros({total}, parameters_[0].options().requires_grad(false));
}

void GradientReducer::zero_grad() {
  flat_.zero_();
  std::int64_t offset = 0;
  for (auto& p : parameters_) {
    at::Tensor view = flat_.narrow(0, offset, p.numel()).view(p.sizes());
    if (!p.grad().defined() || !p.grad().is_same(view)) p.mutable_grad() = view;
    offset += p.numel();
  }
}

void GradientReducer::synchronize(double weight) {
  // Autograd accumulates into the bound views in place; a replaced .grad would silently escape the reduction.
  std::int64_t offset = 0;
  for (auto& p : parameters_) {
    DPT_CHECK(!p.grad().defined() || p.grad().data_ptr() == flat_.narrow(0, offset, 1).data_ptr(),
              "a parameter's gradient was replaced outside the flat buffer (was zero_grad() skipped, or the ",
              "optimizer's zero_grad called?)");
    offset += p.numel();
  }
  if (backend_.world_size() == 1) return;
  if (weight != 1.0) kernels::scale_copy(flat_, flat_, weight);
  backend_.allreduce(flat_, ReduceOp::Sum)->wait();
}

void GradientReducer::broadcast_from_root(const std::vector<at::Tensor>& tensors, Backend& backend) {
  if (backend.world_size() == 1) return;
  std::vector<std::shared_ptr<Work>> pending;
  pending.reserve(tensors.size());
  for (const auto& t : tensors) {
    DPT_CHECK(t.is_contiguous(), "broadcast of model state needs contiguous tensors");
    at::Tensor data = t.detach();
    pending.push_back(backend.broadcast(data, 0));
  }
  for (auto& w : pending) w->wait();
}

}  // namespace dpt::distributed
