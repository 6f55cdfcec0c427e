// Host entry point of the CUDA kernel in adam_step.cu; no CUDA types, so plain C++ can include it.
#pragma once

#include <cstdint>

#include "kernels/adam_scalars.h"

namespace dpt::kernels::cuda {

// Launches adam_step over n elements on `stream` (a cudaStream_t; nullptr for the default stream).
// Returns 0 on success, else the cudaError_t code (see error_string in scale_copy_cuda.h).
int adam_step_f32(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                  const AdamScalars& s, void* stream);

}  // namespace dpt::kernels::cuda
