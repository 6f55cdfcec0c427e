// FusedSGD: LibTorch's SGD whose step() updates each float32 parameter and its momentum buffer in one pass
// (kernels::sgd_step) instead of up to five ATen ops. Same options and per-parameter state, so checkpoints and
// resumption are those of torch::optim::SGD; results agree with its step to float32 rounding. A step with
// anything the kernel does not take (another dtype, non-contiguous or sparse tensors) runs LibTorch's own.
#pragma once

#include <torch/optim/sgd.h>

namespace dpt::train {

class FusedSGD final : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace dpt::train
