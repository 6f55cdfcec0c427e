// SgdScalars: the scalars of one sgd_step, in a header without ATen so that CUDA sources can include it.
#pragma once

namespace dpt::kernels {

// LibTorch's SGD options for one parameter, each rounded to float32 as its ops receive them.
struct SgdScalars {
  float lr = 1e-2F;
  float momentum = 0.0F;
  float dampening = 0.0F;
  float weight_decay = 0.0F;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer is new: it starts as the gradient (no dampening)
};

}  // namespace dpt::kernels
