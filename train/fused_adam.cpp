// FusedAdam/FusedAdamW::step: LibTorch's Adam step (lazy state, step count, bias corrections in double), with the
// element-wise update done by kernels::adam_step.
#include "train/fused_adam.h"

#include <cmath>

#include <torch/autograd.h>

#include "kernels/adam_step.h"
#include "train/optimizer_state.h"

namespace dpt::train {

bool fits_fused_kernel(const torch::Tensor& param) {
  const torch::Tensor& grad = param.grad();
  return !grad.defined() ||
         (param.scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat && param.is_contiguous() &&
          grad.layout() == at::kStrided && grad.is_contiguous() && grad.device() == param.device());
}

torch::Tensor run_step_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (closure == nullptr) return {};
  at::AutoGradMode enable_grad(true);
  return closure();
}

namespace {

// One step of every parameter with a gradient; false (and nothing changed) when some parameter does not fit the
// kernel. `decoupled`: AdamW's weight decay (the parameter shrinks) instead of Adam's L2 term in the gradient.
template <typename State, typename Options, typename StateMap>
bool fused_step(std::vector<torch::optim::OptimizerParamGroup>& groups, StateMap& states, bool decoupled) {
  for (auto& group : groups) {
    if (static_cast<const Options&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (!fits_fused_kernel(p)) return false;
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    const auto& options = static_cast<const Options&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = states[optimizer_state_key(states, p)];
      if (!slot) {
        auto fresh = std::make_unique<State>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Contiguous));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Contiguous));
        slot = std::move(fresh);
      }
      auto& state = static_cast<State&>(*slot);
      state.step(state.step() + 1);
      const auto t = static_cast<double>(state.step());
      kernels::AdamScalars s;
      s.beta1 = static_cast<float>(beta1);
      s.beta2 = static_cast<float>(beta2);
      s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
      s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
      s.eps = static_cast<float>(options.eps());
      s.weight_decay = decoupled ? 0.0F : static_cast<float>(options.weight_decay());
      s.decay_factor = decoupled ? static_cast<float>(1.0 - options.lr() * options.weight_decay()) : 1.0F;
      s.sqrt_bias_correction2 = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
      s.step_size = static_cast<float>(options.lr() / (1.0 - std::pow(beta1, t)));
      torch::Tensor data = p.detach();
      torch::Tensor exp_avg = state.exp_avg().contiguous();
      torch::Tensor exp_avg_sq = state.exp_avg_sq().contiguous();
      kernels::adam_step(data, p.grad(), exp_avg, exp_avg_sq, s);
      state.exp_avg(exp_avg);
      state.exp_avg_sq(exp_avg_sq);
    }
  }
  return true;
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::Tensor loss = run_step_closure(closure);
  if (!fused_step<torch::optim::AdamParamState, torch::optim::AdamOptions>(param_groups_, state_, false)) {
    torch::optim::Adam::step();
  }
  return loss;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::Tensor loss = run_step_closure(closure);
  if (!fused_step<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(param_groups_, state_, true)) {
    torch::optim::AdamW::step();
  }
  return loss;
}

}  // namespace dpt::train
