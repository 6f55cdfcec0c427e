// FusedAdam and FusedAdamW: LibTorch's Adam and AdamW whose step() updates each float32 parameter in one pass
// (kernels::adam_step) instead of seven ATen ops. Same options and per-parameter state, so checkpoints, state
// tensors and resumption are those of the LibTorch classes; results agree with theirs to float32 rounding.
// A step with anything the kernel does not take (amsgrad, another dtype, non-contiguous or sparse tensors)
// runs LibTorch's own step.
#pragma once

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace dpt::train {

class FusedAdam final : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW final : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace dpt::train
