// The optimizer registry: train.optimizer names -> factories (adam, adamw, sgd built in; users add their own).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/optim/optimizer.h>

#include "core/config.h"
#include "core/registry.h"

namespace dpt::train {

// train.lr, train.weight_decay, train.momentum, train.fused_optimizer.
struct OptimizerSettings {
  double lr = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;
  bool fused = true;  // one pass per parameter (kernels::adam_step, kernels::sgd_step)

  static OptimizerSettings from_config(const Config& config);
};

using OptimizerFactory =
    std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>, const OptimizerSettings&)>;

// The process-wide registry, with adam, adamw and sgd. A checkpoint holds an optimizer's state through
// optimizer_state.h, which knows Adam, AdamW and SGD: a new optimizer type needs a row there too to resume.
Registry<OptimizerFactory>& optimizers();

}  // namespace dpt::train
