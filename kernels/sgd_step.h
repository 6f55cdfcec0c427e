// sgd_step: one SGD update with momentum of a float32 parameter in a single pass over parameter, gradient and
// momentum buffer, where LibTorch's op-by-op step makes up to five passes and a temporary.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "kernels/sgd_scalars.h"

namespace dpt::kernels {

// Per element, in the order of LibTorch's ops (so results match its step to float32 rounding):
//   d = grad + weight_decay * p (only when weight_decay != 0);
//   with momentum != 0: buf = first_step ? d : buf * momentum + (1 - dampening) * d;
//                       d = nesterov ? d + momentum * buf : buf;
//   p += -lr * d
// All tensors float32, contiguous, same numel and device; `momentum_buffer` is not read or written when
// momentum == 0 (it may be undefined then). CUDA tensors run on `stream` (a cudaStream_t; nullptr: the current
// stream).
void sgd_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& momentum_buffer, const SgdScalars& s,
              void* stream = nullptr);

// The CPU path over raw buffers (elements [0, n)); also the reference the CUDA kernel is checked against.
void sgd_step_cpu(float* param, const float* grad, float* momentum_buffer, std::int64_t n, const SgdScalars& s);

}  // namespace dpt::kernels
