// adam_step: one Adam or AdamW update of a float32 parameter in a single pass over parameter, gradient and both
// moments, where LibTorch's op-by-op step makes seven passes and two temporaries.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "kernels/adam_scalars.h"

namespace dpt::kernels {

// Per element, in the order of LibTorch's ops (so results match its step to float32 rounding):
//   p *= decay_factor;  g = grad + weight_decay * p (only when weight_decay != 0);  m = m * beta1 + (1 - beta1) * g;
//   v = v * beta2 + (1 - beta2) * g * g;  p += -step_size * m / (sqrt(v) / sqrt_bias_correction2 + eps)
// All four tensors: float32, contiguous, same numel and device. CUDA tensors run the CUDA kernel on `stream` (a
// cudaStream_t; nullptr: the caller's current stream, where its ATen ops run).
void adam_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
               const AdamScalars& s, void* stream = nullptr);

// The CPU path over raw buffers (elements [0, n)); also the reference the CUDA kernel is checked against.
void adam_step_cpu(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                   const AdamScalars& s);

}  // namespace dpt::kernels
