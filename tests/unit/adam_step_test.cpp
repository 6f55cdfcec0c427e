// adam_step: the host API against the single-threaded reference, on sizes that split unevenly over threads and
// vector lanes, and against LibTorch's op-by-op update.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include "core/error.h"
#include "kernels/adam_step.h"

namespace dpt::kernels {
namespace {

AdamScalars scalars(float weight_decay, float decay_factor) {
  AdamScalars s;
  s.weight_decay = weight_decay;
  s.decay_factor = decay_factor;
  s.sqrt_bias_correction2 = 0.0447F;
  s.step_size = 0.0105F;
  return s;
}

TEST(AdamStep, ThreadedHostApiEqualsTheReferenceBitForBit) {
  at::set_num_threads(2);
  for (std::int64_t n : {0, 1, 3, 8, 17, 16385, 100003}) {
    for (const AdamScalars& s : {scalars(0.0F, 1.0F), scalars(0.01F, 1.0F), scalars(0.0F, 0.999F)}) {
      const at::Tensor grad = at::randn({n});
      at::Tensor p = at::randn({n}), m = at::randn({n}) * 0.1, v = at::rand({n}) * 0.01;
      at::Tensor rp = p.clone(), rm = m.clone(), rv = v.clone();
      adam_step(p, grad, m, v, s);
      adam_step_cpu(rp.data_ptr<float>(), grad.data_ptr<float>(), rm.data_ptr<float>(), rv.data_ptr<float>(), n, s);
      EXPECT_TRUE(at::equal(p, rp) && at::equal(m, rm) && at::equal(v, rv)) << "n=" << n;
    }
  }
}

TEST(AdamStep, MatchesLibTorchsOpByOpUpdate) {
  const std::int64_t n = 4099;
  const AdamScalars s = scalars(0.02F, 1.0F);
  const at::Tensor grad = at::randn({n});
  at::Tensor p = at::randn({n}), m = at::randn({n}) * 0.1, v = at::rand({n}) * 0.01;
  // LibTorch's Adam::step, op by op.
  at::Tensor g = grad.add(p, s.weight_decay);
  at::Tensor em = m.mul(s.beta1).add_(g, s.one_minus_beta1);
  at::Tensor ev = v.mul(s.beta2).addcmul_(g, g, s.one_minus_beta2);
  at::Tensor ep = p.addcdiv(em, (ev.sqrt() / s.sqrt_bias_correction2).add_(s.eps), -s.step_size);
  adam_step(p, grad, m, v, s);
  // LibTorch's vectorised kernels fuse some multiply-adds: a last-bit difference of the larger operand at most.
  EXPECT_TRUE(at::allclose(m, em, 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(v, ev, 1e-6, 1e-8));
  EXPECT_TRUE(at::allclose(p, ep, 1e-6, 1e-6));
  EXPECT_FALSE(at::allclose(p, ep.sub(s.step_size * 1e-2), 1e-6, 1e-6)) << "the tolerance hides a real difference";
}

TEST(AdamStep, RefusesMismatchedTensors) {
  at::Tensor p = at::zeros({4}), m = at::zeros({4}), v = at::zeros({4});
  EXPECT_THROW(adam_step(p, at::zeros({5}), m, v, AdamScalars{}), Error);
  EXPECT_THROW(adam_step(p, at::zeros({4}, at::kDouble), m, v, AdamScalars{}), Error);
  at::Tensor strided = at::zeros({8}).slice(0, 0, 8, 2);
  EXPECT_THROW(adam_step(strided, at::zeros({4}), m, v, AdamScalars{}), Error);
}

}  // namespace
}  // namespace dpt::kernels
