// scale_copy: dst = src * scale in one pass (gradient averaging fused into the copy to or from a flat buffer), with
// an optional check for NaN and infinity riding along the same pass.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace dpt::kernels {

// dst and src: same numel, same dtype (float32, float64, float16 or bfloat16), same device, dst contiguous.
// Dispatches to the CUDA kernel (on the current stream) for CUDA tensors and to the CPU path otherwise.
// `nonfinite`, when defined (int32, one element, on dst's device), is set to 1 where src holds a NaN or an infinity
// and left as it is otherwise: a flag for many calls, with no host synchronisation on CUDA.
void scale_copy(at::Tensor& dst, const at::Tensor& src, double scale, const at::Tensor& nonfinite = {});

// The CPU path over raw float buffers; also the reference the CUDA kernel is checked against. Returns whether src
// held a NaN or an infinity. dst may be src.
bool scale_copy_cpu(float* dst, const float* src, std::int64_t n, float scale);

}  // namespace dpt::kernels
