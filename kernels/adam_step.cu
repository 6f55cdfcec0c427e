// CUDA path of adam_step: a grid-stride loop, one thread per element, the same operations as the CPU path.
#include <cuda_runtime.h>

#include "kernels/adam_step_cuda.h"

namespace dpt::kernels::cuda {
namespace {

__global__ void adam_step_kernel(float* __restrict__ param, const float* __restrict__ grad,
                                 float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq, std::int64_t n,
                                 AdamScalars s) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float p = __fmul_rn(param[i], s.decay_factor);
    const float g = s.weight_decay != 0.0F ? __fadd_rn(grad[i], __fmul_rn(s.weight_decay, p)) : grad[i];
    const float m = __fadd_rn(__fmul_rn(exp_avg[i], s.beta1), __fmul_rn(s.one_minus_beta1, g));
    const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.sqrt_bias_correction2), s.eps);
    param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(-s.step_size, m), denom));
  }
}

}  // namespace

int adam_step_f32(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                  const AdamScalars& s, void* stream) {
  if (n == 0) return 0;
  constexpr int threads = 256;
  const std::int64_t wanted = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 4096 ? wanted : 4096);
  adam_step_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(param, grad, exp_avg, exp_avg_sq, n,
                                                                               s);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace dpt::kernels::cuda
