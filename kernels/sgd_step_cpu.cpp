// CPU path and reference of sgd_step, and the device dispatch of the host API.
#include "kernels/sgd_step.h"

#include <ATen/Parallel.h>

#include <utility>

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/cuda_stream.h"
#include "kernels/sgd_step_cuda.h"
#endif

namespace dpt::kernels {

void sgd_step_cpu(float* __restrict param, const float* __restrict grad, float* __restrict momentum_buffer,
                  std::int64_t n, const SgdScalars& s) {
  const float neg_lr = -s.lr;
  const float momentum = s.momentum;
  const float keep = 1.0F - s.dampening;
  const float weight_decay = s.weight_decay;
  const bool l2 = weight_decay != 0.0F;  // as in LibTorch, no term at all without decay (0 * inf would be NaN)
  for (std::int64_t i = 0; i < n; ++i) {
    float d = l2 ? grad[i] + weight_decay * param[i] : grad[i];
    if (momentum != 0.0F) {
      const float buf = s.first_step ? d : momentum_buffer[i] * momentum + keep * d;
      momentum_buffer[i] = buf;
      d = s.nesterov ? d + momentum * buf : buf;
    }
    param[i] = param[i] + neg_lr * d;
  }
}

void sgd_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& momentum_buffer, const SgdScalars& s,
              void* stream) {
  const bool with_buffer = s.momentum != 0.0F;
  for (const at::Tensor* t : {&std::as_const(param), &grad, &std::as_const(momentum_buffer)}) {
    if (t == &momentum_buffer && !with_buffer) continue;
    DPT_CHECK(t->defined() && t->scalar_type() == at::kFloat && t->is_contiguous() && t->numel() == param.numel() &&
                  t->device() == param.device(),
              "sgd_step: parameter, gradient and momentum buffer must be contiguous float32 tensors of one shape ",
              "and device (got ", t->defined() ? t->toString() : "an undefined tensor", " for a parameter ",
              param.toString(), " of ", param.numel(), " elements)");
  }
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* b = with_buffer ? momentum_buffer.data_ptr<float>() : nullptr;
  if (param.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
    check_launch(
        cuda::sgd_step_f32(p, g, b, param.numel(), s, stream ? stream : current_cuda_stream(param.device().index())),
        "sgd_step");
    return;
#else
    static_cast<void>(stream);
    no_cuda_kernels("sgd_step");
#endif
  }
  // Pieces of 64 KiB per thread, as adam_step splits its work.
  constexpr std::int64_t kGrain = 16384;
  at::parallel_for(0, param.numel(), kGrain, [&](std::int64_t begin, std::int64_t end) {
    sgd_step_cpu(p + begin, g + begin, b ? b + begin : nullptr, end - begin, s);
  });
}

}  // namespace dpt::kernels
