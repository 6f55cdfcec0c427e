// The built-in optimizers: LibTorch's Adam, AdamW and SGD (each with a fused step unless train.fused_optimizer =
// false).
#include "train/optimizers.h"

#include <torch/optim.h>

#include "train/fused_adam.h"
#include "train/fused_sgd.h"

namespace dpt::train {

OptimizerSettings OptimizerSettings::from_config(const Config& config) {
  OptimizerSettings s;
  s.lr = config.get_float("train.lr");
  s.weight_decay = config.get_float("train.weight_decay");
  s.momentum = config.get_float("train.momentum");
  s.fused = config.get_bool("train.fused_optimizer");
  return s;
}

namespace {

// Adam and AdamW share their shape: LibTorch's optimizer, or its fused subclass with the same options and state.
template <typename Plain, typename Fused, typename Options>
OptimizerFactory adam_like() {
  return [](std::vector<torch::Tensor> params, const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
    const auto options = Options(s.lr).weight_decay(s.weight_decay);
    if (s.fused) return std::make_unique<Fused>(std::move(params), options);
    return std::make_unique<Plain>(std::move(params), options);
  };
}

}  // namespace

Registry<OptimizerFactory>& optimizers() {
  static Registry<OptimizerFactory>* registry = [] {
    auto* r = new Registry<OptimizerFactory>("optimizer", "train.optimizer");
    r->add("adam", adam_like<torch::optim::Adam, FusedAdam, torch::optim::AdamOptions>(), "Adam (L2 weight decay)");
    r->add("adamw", adam_like<torch::optim::AdamW, FusedAdamW, torch::optim::AdamWOptions>(),
           "AdamW (decoupled weight decay)");
    r->add(
        "sgd",
        [](std::vector<torch::Tensor> params, const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
          const auto options = torch::optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay);
          if (s.fused) return std::make_unique<FusedSGD>(std::move(params), options);
          return std::make_unique<torch::optim::SGD>(std::move(params), options);
        },
        "SGD with momentum");
    return r;
  }();
  return *registry;
}

}  // namespace dpt::train
