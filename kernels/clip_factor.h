// clip_factor: the one formula both grad_norm paths multiply gradients by; a header without ATen, so that the
// CUDA kernel computes it on the device from the same source.
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define DPT_HOST_DEVICE __host__ __device__
#else
#define DPT_HOST_DEVICE
#endif

namespace dpt::kernels {

// inv_scale * min(1, max_norm / (norm + 1e-6)) with norm = inv_scale * sqrt(sum_squares): LibTorch's
// clip_grad_norm_ coefficient of the unscaled gradient, folded into the unscaling. max_norm <= 0: inv_scale alone.
DPT_HOST_DEVICE inline double clip_factor(double sum_squares, double max_norm, double inv_scale) {
  if (max_norm <= 0) return inv_scale;
  const double coefficient = max_norm / (inv_scale * sqrt(sum_squares) + 1e-6);
  return inv_scale * (coefficient < 1.0 ? coefficient : 1.0);
}

}  // namespace dpt::kernels
