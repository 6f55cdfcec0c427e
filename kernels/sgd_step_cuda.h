// Host entry point of the CUDA kernel in sgd_step.cu; no CUDA types, so plain C++ can include it.
#pragma once

#include <cstdint>

#include "kernels/sgd_scalars.h"

namespace dpt::kernels::cuda {

// Launches sgd_step over n elements on `stream` (a cudaStream_t). Returns 0 or the cudaError_t code.
int sgd_step_f32(float* param, const float* grad, float* momentum_buffer, std::int64_t n, const SgdScalars& s,
                 void* stream);

}  // namespace dpt::kernels::cuda
