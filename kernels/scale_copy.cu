// CUDA path of scale_copy: a grid-stride loop, vectorised by float4 when both pointers are 16-byte aligned. The
// non-finite flag is a plain store of 1 by any thread that meets a NaN or infinity (as apex's noop flag is).
#include <cuda_runtime.h>

#include "kernels/scale_copy_cuda.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void scale_copy_vec4(float4* __restrict__ dst, const float4* __restrict__ src, std::int64_t n4,
                                float scale, int* nonfinite) {
  bool found = false;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float4 v = src[i];
    found = found || !(isfinite(v.x) && isfinite(v.y) && isfinite(v.z) && isfinite(v.w));
    v.x *= scale;
    v.y *= scale;
    v.z *= scale;
    v.w *= scale;
    dst[i] = v;
  }
  if (found && nonfinite != nullptr) *nonfinite = 1;
}

__global__ void scale_copy_scalar(float* __restrict__ dst, const float* __restrict__ src, std::int64_t n,
                                  float scale, int* nonfinite) {
  bool found = false;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    found = found || !isfinite(src[i]);
    dst[i] = src[i] * scale;
  }
  if (found && nonfinite != nullptr) *nonfinite = 1;
}

int blocks_for(std::int64_t n, int threads) {
  // Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
  const std::int64_t wanted = (n + threads - 1) / threads;
  return static_cast<int>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
}

}  // namespace

int scale_copy_f32(float* dst, const float* src, std::int64_t n, float scale, int* nonfinite, void* stream) {
  if (n == 0) return 0;
  constexpr int threads = 256;
  auto s = static_cast<cudaStream_t>(stream);
  const bool aligned = (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) &&
                       (reinterpret_cast<std::uintptr_t>(src) % 16 == 0);
  const std::int64_t n4 = aligned ? n / 4 : 0;
  if (n4 > 0) {
    scale_copy_vec4<<<blocks_for(n4, threads), threads, 0, s>>>(reinterpret_cast<float4*>(dst),
                                                                 reinterpret_cast<const float4*>(src), n4, scale,
                                                                 nonfinite);
  }
  const std::int64_t done = n4 * 4;
  if (done < n) {
    scale_copy_scalar<<<blocks_for(n - done, threads), threads, 0, s>>>(dst + done, src + done, n - done, scale,
                                                                        nonfinite);
  }
  return static_cast<int>(cudaGetLastError());
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace dpt::kernels::cuda
