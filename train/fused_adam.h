// FusedAdam and FusedAdamW: LibTorch's Adam and AdamW whose step() updates each float32 parameter in one pass
// (kernels::adam_step) instead of seven ATen ops. Same options and per-parameter state, so checkpoints, state
// tensors and resumption are those of the LibTorch classes; results agree with theirs to float32 rounding.
// A step with anything the kernel does not take (amsgrad, another dtype, non-contiguous or sparse tensors)
// runs LibTorch's own step.
#pragma once

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace dpt::train {

// Whether a fused kernel takes this parameter: float32 and contiguous, its gradient (if any) a dense contiguous
// float32 tensor on the same device. Shared by the fused optimizers (FusedSGD too).
bool fits_fused_kernel(const torch::Tensor& param);
// Runs an optimizer step's closure with gradients on, as LibTorch's optimizers do; no closure: an undefined loss.
torch::Tensor run_step_closure(const torch::optim::Optimizer::LossClosure& closure);

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
