// Host entry points of the CUDA kernels in bucket_pack.cu; no CUDA types, so plain C++ can include it.
#pragma once

#include <cstdint>

namespace dpt::kernels::cuda {

// wire[i] = 16-bit(flat[i] * scale) (bf16 when `bf16`, else fp16), rounded to nearest even, on `stream`.
// Returns 0 or the cudaError_t code.
int pack_bucket_f32(std::uint16_t* wire, const float* flat, std::int64_t n, float scale, bool bf16, void* stream);
// flat[i] = float(wire[i]) * scale.
int unpack_bucket_f32(float* flat, const std::uint16_t* wire, std::int64_t n, float scale, bool bf16, void* stream);

}  // namespace dpt::kernels::cuda
