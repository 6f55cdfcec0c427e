// AdamScalars: the scalars of one adam_step, in a header without ATen so that CUDA sources can include it.
#pragma once

namespace dpt::kernels {

// The step's scalars, each computed in double and rounded to float32 as LibTorch's Adam/AdamW pass them to its ops.
struct AdamScalars {
  float beta1 = 0.9F;
  float beta2 = 0.999F;
  float one_minus_beta1 = 0.1F;  // 1 - beta1 and 1 - beta2 rounded from double, as LibTorch passes them
  float one_minus_beta2 = 0.001F;
  float eps = 1e-8F;
  float weight_decay = 0.0F;   // Adam: added to the gradient as weight_decay * param (L2)
  float decay_factor = 1.0F;   // AdamW: the parameter is first multiplied by 1 - lr * weight_decay
  float sqrt_bias_correction2 = 1.0F;  // sqrt(1 - beta2^t)
  float step_size = 1e-3F;            // lr / (1 - beta1^t)
};

}  // namespace dpt::kernels
