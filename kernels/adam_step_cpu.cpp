// CPU path and reference of adam_step, and the device dispatch of the host API.
#include "kernels/adam_step.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <utility>

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/adam_step_cuda.h"
#include "kernels/cuda_stream.h"
#endif

namespace dpt::kernels {

void adam_step_cpu(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                   float* __restrict exp_avg_sq, std::int64_t n, const AdamScalars& s) {
  const float beta1 = s.beta1;
  const float beta2 = s.beta2;
  const float one_minus_beta1 = s.one_minus_beta1;
  const float one_minus_beta2 = s.one_minus_beta2;
  const float eps = s.eps;
  const float weight_decay = s.weight_decay;
  const float decay_factor = s.decay_factor;
  const float sqrt_bc2 = s.sqrt_bias_correction2;
  const float neg_step_size = -s.step_size;
  const bool l2 = weight_decay != 0.0F;  // as in LibTorch, no term at all without decay (0 * inf would be NaN)
  for (std::int64_t i = 0; i < n; ++i) {
    const float p = param[i] * decay_factor;
    const float g = l2 ? grad[i] + weight_decay * p : grad[i];
    const float m = exp_avg[i] * beta1 + one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p + neg_step_size * m / (std::sqrt(v) / sqrt_bc2 + eps);
  }
}

void adam_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
               const AdamScalars& s, void* stream) {
  for (const at::Tensor* t : {&std::as_const(param), &grad, &std::as_const(exp_avg), &std::as_const(exp_avg_sq)}) {
    DPT_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous() && t->numel() == param.numel() &&
                  t->device() == param.device(),
              "adam_step: parameter, gradient and moments must be contiguous float32 tensors of one shape and ",
              "device (got ", t->toString(), " of ", t->numel(), " elements for a parameter ", param.toString(),
              " of ", param.numel(), ")");
  }
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  if (param.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
    check_launch(cuda::adam_step_f32(p, g, m, v, param.numel(), s,
                                     stream ? stream : current_cuda_stream(param.device().index())),
                 "adam_step");
    return;
#else
    static_cast<void>(stream);
    no_cuda_kernels("adam_step");
#endif
  }
  // Pieces of 64 KiB per thread: large enough to stream, small enough to spread a layer over the threads.
  constexpr std::int64_t kGrain = 16384;
  at::parallel_for(0, param.numel(), kGrain, [&](std::int64_t begin, std::int64_t end) {
    adam_step_cpu(p + begin, g + begin, m + begin, v + begin, end - begin, s);
  });
}

}  // namespace dpt::kernels
