// CUDA path of bucket_pack: a grid-stride loop with CUDA's round-to-nearest-even conversions.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/bucket_pack_cuda.h"

namespace dpt::kernels::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::int64_t n) {
  const std::int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(wanted < 4096 ? wanted : 4096);
}

template <bool kBf16>
__global__ void pack(std::uint16_t* __restrict__ wire, const float* __restrict__ flat, std::int64_t n, float scale) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float x = flat[i] * scale;
    if constexpr (kBf16) {
      wire[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x));
    } else {
      wire[i] = __half_as_ushort(__float2half_rn(x));
    }
  }
}

template <bool kBf16>
__global__ void unpack(float* __restrict__ flat, const std::uint16_t* __restrict__ wire, std::int64_t n, float scale) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (kBf16) {
      flat[i] = __bfloat162float(__ushort_as_bfloat16(wire[i])) * scale;
    } else {
      flat[i] = __half2float(__ushort_as_half(wire[i])) * scale;
    }
  }
}

// One launch of the bf16 or the fp16 kernel of a direction.
template <typename Dst, typename Src>
int launch(void (*bf16)(Dst*, const Src*, std::int64_t, float), void (*fp16)(Dst*, const Src*, std::int64_t, float),
           Dst* dst, const Src* src, std::int64_t n, float scale, bool use_bf16, void* stream) {
  if (n == 0) return 0;
  (use_bf16 ? bf16 : fp16)<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(dst, src, n, scale);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int pack_bucket_f32(std::uint16_t* wire, const float* flat, std::int64_t n, float scale, bool bf16, void* stream) {
  return launch(pack<true>, pack<false>, wire, flat, n, scale, bf16, stream);
}

int unpack_bucket_f32(float* flat, const std::uint16_t* wire, std::int64_t n, float scale, bool bf16, void* stream) {
  return launch(unpack<true>, unpack<false>, flat, wire, n, scale, bf16, stream);
}

}  // namespace dpt::kernels::cuda
