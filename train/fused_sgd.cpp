// FusedSGD::step: LibTorch's SGD step (lazy momentum buffer, created as the first gradient) with the element-wise
// update done by kernels::sgd_step.
#include "train/fused_sgd.h"

#include <torch/autograd.h>

#include "kernels/sgd_step.h"
#include "train/fused_adam.h"
#include "train/optimizer_state.h"

namespace dpt::train {

torch::Tensor FusedSGD::step(LossClosure closure) {
  torch::Tensor loss = run_step_closure(closure);
  for (auto& group : param_groups_) {
    for (const auto& p : group.params()) {
      if (!fits_fused_kernel(p)) {
        torch::optim::SGD::step();
        return loss;
      }
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
    kernels::SgdScalars s;
    s.lr = static_cast<float>(options.lr());
    s.momentum = static_cast<float>(options.momentum());
    s.dampening = static_cast<float>(options.dampening());
    s.weight_decay = static_cast<float>(options.weight_decay());
    s.nesterov = options.nesterov();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::Tensor buffer;
      s.first_step = false;
      if (s.momentum != 0.0F) {
        auto& slot = state_[optimizer_state_key(state_, p)];
        if (!slot) {
          auto fresh = std::make_unique<torch::optim::SGDParamState>();
          fresh->momentum_buffer(torch::empty_like(p, at::MemoryFormat::Contiguous));
          slot = std::move(fresh);
          s.first_step = true;
        }
        auto& state = static_cast<torch::optim::SGDParamState&>(*slot);
        buffer = state.momentum_buffer().contiguous();
        state.momentum_buffer(buffer);
      }
      torch::Tensor data = p.detach();
      kernels::sgd_step(data, p.grad(), buffer, s);
    }
  }
  return loss;
}

}  // namespace dpt::train
