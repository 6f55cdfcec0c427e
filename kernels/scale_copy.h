// scale_copy: dst = src * scale in one pass (gradient averaging fused into the copy to or from a flat buffer).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace dpt::kernels {

// dst and src: same numel, same dtype (float32, float64, float16 or bfloat16), same device, dst contiguous.
// Dispatches to the CUDA kernel (on the current stream) for CUDA tensors and to the CPU path otherwise.
void scale_copy(at::Tensor& dst, const at::Tensor& src, double scale);

// The CPU path over raw float buffers; also the reference the CUDA kernel is checked against.
void scale_copy_cpu(float* dst, const float* src, std::int64_t n, float scale);

}  // namespace dpt::kernels
