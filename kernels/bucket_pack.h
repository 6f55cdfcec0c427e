// bucket_pack: a float32 gradient bucket to and from its 16-bit wire copy (bf16 or fp16) in one pass, with the
// rank's scale applied on the way (1 / world for averaging, or the rank's share of the global batch), for the
// compressed all-reduce (ddp.compression).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace dpt::kernels {

// wire[i] = round_to_nearest_even(flat[i] * scale): wire bfloat16 or float16, flat float32, both contiguous, one
// numel and device. CUDA tensors run on `stream` (a cudaStream_t; nullptr: the current stream).
void pack_bucket(at::Tensor& wire, const at::Tensor& flat, double scale, void* stream = nullptr);
// flat[i] = float(wire[i]) * scale, the same arguments the other way.
void unpack_bucket(at::Tensor& flat, const at::Tensor& wire, double scale, void* stream = nullptr);

// The CPU paths over raw buffers (16-bit values as their bits), also the references. Rounding as LibTorch's
// conversions (NaN stays NaN; fp16 overflows to infinity).
void pack_bf16_cpu(std::uint16_t* wire, const float* flat, std::int64_t n, float scale);
void unpack_bf16_cpu(float* flat, const std::uint16_t* wire, std::int64_t n, float scale);
void pack_fp16_cpu(std::uint16_t* wire, const float* flat, std::int64_t n, float scale);
void unpack_fp16_cpu(float* flat, const std::uint16_t* wire, std::int64_t n, float scale);

}  // namespace dpt::kernels
