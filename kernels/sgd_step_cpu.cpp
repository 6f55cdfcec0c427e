// CPU path and reference of sgd_step, and the device dispatch of the host API.
#include "kernels/sgd_step.h"

#include <ATen/Parallel.h>

#include <array>
#include <utility>

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/cuda_stream.h"
#include "kernels/sgd_step_cuda.h"
#endif

namespace dpt::kernels {

namespace {

// One loop per combination of the step's switches, so that no branch is left inside and each loop vectorises.
template <bool kL2, bool kMomentum, bool kFirst, bool kNesterov>
void sgd_loop(float* __restrict param, const float* __restrict grad, float* __restrict momentum_buffer,
              std::int64_t n, float neg_lr, float weight_decay, float momentum, float keep) {
  for (std::int64_t i = 0; i < n; ++i) {
    // As in LibTorch, no decay term at all without decay (0 * inf would be NaN).
    float d = kL2 ? grad[i] + weight_decay * param[i] : grad[i];
    if constexpr (kMomentum) {
      const float buf = kFirst ? d : momentum_buffer[i] * momentum + keep * d;
      momentum_buffer[i] = buf;
      d = kNesterov ? d + momentum * buf : buf;
    }
    param[i] = param[i] + neg_lr * d;
  }
}

using SgdLoop = void (*)(float*, const float*, float*, std::int64_t, float, float, float, float);

template <int... kCase>
constexpr std::array<SgdLoop, sizeof...(kCase)> sgd_loops(std::integer_sequence<int, kCase...>) {
  return {&sgd_loop<(kCase & 1) != 0, (kCase & 2) != 0, (kCase & 4) != 0, (kCase & 8) != 0>...};
}

}  // namespace

void sgd_step_cpu(float* param, const float* grad, float* momentum_buffer, std::int64_t n, const SgdScalars& s) {
  static constexpr auto loops = sgd_loops(std::make_integer_sequence<int, 16>{});
  const int which = (s.weight_decay != 0.0F ? 1 : 0) | (s.momentum != 0.0F ? 2 : 0) | (s.first_step ? 4 : 0) |
                    (s.nesterov ? 8 : 0);
  loops[static_cast<std::size_t>(which)](param, grad, momentum_buffer, n, -s.lr, s.weight_decay, s.momentum,
                                         1.0F - s.dampening);
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
