// Host entry points of the CUDA kernels in scale_copy.cu; no CUDA types, so plain C++ can include it.
#pragma once

#include <cstdint>

namespace dpt::kernels::cuda {

// Launches dst[i] = src[i] * scale on `stream` (a cudaStream_t; nullptr for the default stream); where `nonfinite`
// (device memory) is not null, a NaN or infinity in src sets it to 1. Returns 0 on success, else the cudaError_t code.
int scale_copy_f32(float* dst, const float* src, std::int64_t n, float scale, int* nonfinite, void* stream);

// Human-readable name of a cudaError_t code.
const char* error_string(int code);

}  // namespace dpt::kernels::cuda
