// CUDA path of sgd_step: a grid-stride loop, one thread per element, each rounding spelled out as in the CPU path.
#include <cuda_runtime.h>

#include "kernels/sgd_step_cuda.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void sgd_step_kernel(float* __restrict__ param, const float* __restrict__ grad,
                                float* __restrict__ momentum_buffer, std::int64_t n, SgdScalars s) {
  const float keep = 1.0F - s.dampening;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float d = s.weight_decay != 0.0F ? __fadd_rn(grad[i], __fmul_rn(s.weight_decay, param[i])) : grad[i];
    if (s.momentum != 0.0F) {
      const float buf =
          s.first_step ? d : __fadd_rn(__fmul_rn(momentum_buffer[i], s.momentum), __fmul_rn(keep, d));
      momentum_buffer[i] = buf;
      d = s.nesterov ? __fadd_rn(d, __fmul_rn(s.momentum, buf)) : buf;
    }
    param[i] = __fadd_rn(param[i], __fmul_rn(-s.lr, d));
  }
}

}  // namespace

int sgd_step_f32(float* param, const float* grad, float* momentum_buffer, std::int64_t n, const SgdScalars& s,
                 void* stream) {
  if (n == 0) return 0;
  constexpr int threads = 256;
  const std::int64_t wanted = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 4096 ? wanted : 4096);
  sgd_step_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(param, grad, momentum_buffer, n, s);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace dpt::kernels::cuda
