// CUDA path of scale_copy: a grid-stride loop, vectorised by float4 when both pointers are 16-byte aligned.
#include <cuda_runtime.h>

#include "kernels/scale_copy_cuda.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void scale_copy_vec4(float4* __restrict__ dst, const float4* __restrict__ src, std::int64_t n4,
                                float scale) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float4 v = src[i];
    v.x *= scale;
    v.y *= scale;
    v.z *= scale;
    v.w *= scale;
    dst[i] = v;
  }
}

__global__ void scale_copy_scalar(float* __restrict__ dst, const float* __restrict__ src, std::int64_t n,
                                  float scale) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i] * scale;
  }
}

int blocks_for(std::int64_t n, int threads) {
  // Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
  const std::int64_t wanted = (n + threads - 1) / threads;
  return static_cast<int>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
}

}  // namespace

int scale_copy_f32(float* dst, const float* src, std::int64_t n, float scale, void* stream) {
  if (n == 0) return 0;
  constexpr int threads = 256;
  auto s = static_cast<cudaStream_t>(stream);
  const bool aligned = (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) &&
                       (reinterpret_cast<std::uintptr_t>(src) % 16 == 0);
  const std::int64_t n4 = aligned ? n / 4 : 0;
  if (n4 > 0) {
    scale_copy_vec4<<<blocks_for(n4, threads), threads, 0, s>>>(reinterpret_cast<float4*>(dst),
                                                                 reinterpret_cast<const float4*>(src), n4, scale);
  }
  const std::int64_t done = n4 * 4;
  if (done < n) {
    scale_copy_scalar<<<blocks_for(n - done, threads), threads, 0, s>>>(dst + done, src + done, n - done, scale);
  }
  return static_cast<int>(cudaGetLastError());
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace dpt::kernels::cuda
