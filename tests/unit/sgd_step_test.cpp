// sgd_step: the threaded host API against the reference loop, and both against LibTorch's SGD optimizer step
// (momentum, dampening, nesterov, weight decay; the first step that creates the buffer).
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <torch/optim/sgd.h>

#include "core/error.h"
#include "kernels/sgd_step.h"

namespace dpt::kernels {
namespace {

SgdScalars scalars(float momentum, float dampening, float weight_decay, bool nesterov) {
  SgdScalars s;
  s.lr = 0.05F;
  s.momentum = momentum;
  s.dampening = dampening;
  s.weight_decay = weight_decay;
  s.nesterov = nesterov;
  return s;
}

TEST(SgdStep, ThreadedHostApiEqualsTheReferenceBitForBit) {
  at::set_num_threads(2);
  for (std::int64_t n : {0, 1, 7, 16385, (1 << 20) + 3}) {
    for (bool first : {true, false}) {
      SgdScalars s = scalars(0.9F, 0.1F, 0.01F, false);
      s.first_step = first;
      const at::Tensor grad = at::randn({n});
      at::Tensor p = at::randn({n}), b = at::randn({n});
      at::Tensor rp = p.clone(), rb = b.clone();
      sgd_step(p, grad, b, s);
      sgd_step_cpu(rp.data_ptr<float>(), grad.data_ptr<float>(), rb.data_ptr<float>(), n, s);
      EXPECT_TRUE(at::equal(p, rp) && at::equal(b, rb)) << "n=" << n;
    }
  }
}

// Three steps of LibTorch's SGD against three kernel steps (the first creates the buffer), same gradients.
TEST(SgdStep, MatchesLibTorchsSgdOverSteps) {
  struct Case {
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (const Case& c : {Case{0.0, 0.0, 0.0, false}, Case{0.9, 0.0, 0.0, false}, Case{0.9, 0.2, 0.01, false},
                        Case{0.9, 0.0, 0.01, true}}) {
    const std::int64_t n = 4099;
    at::Tensor theirs = at::randn({n}).requires_grad_(true);
    torch::optim::SGD sgd({theirs}, torch::optim::SGDOptions(0.05)
                                        .momentum(c.momentum)
                                        .dampening(c.dampening)
                                        .weight_decay(c.weight_decay)
                                        .nesterov(c.nesterov));
    at::Tensor mine = theirs.detach().clone();
    at::Tensor buffer = at::zeros({n});
    for (int step = 0; step < 3; ++step) {
      const at::Tensor grad = at::randn({n});
      theirs.mutable_grad() = grad.clone();
      sgd.step();
      SgdScalars s = scalars(static_cast<float>(c.momentum), static_cast<float>(c.dampening),
                             static_cast<float>(c.weight_decay), c.nesterov);
      s.first_step = step == 0;
      sgd_step(mine, grad, buffer, s);
    }
    EXPECT_TRUE(at::allclose(mine, theirs.detach(), 1e-6, 1e-6)) << "momentum " << c.momentum << " nesterov "
                                                                  << c.nesterov;
    EXPECT_FALSE(at::allclose(mine, theirs.detach() + 1e-4, 1e-6, 1e-6)) << "the tolerance hides a real difference";
  }
}

TEST(SgdStep, RefusesMismatchedTensors) {
  at::Tensor p = at::zeros({4}), b = at::zeros({4});
  EXPECT_THROW(sgd_step(p, at::zeros({5}), b, scalars(0.9F, 0, 0, false)), Error);
  at::Tensor none;
  EXPECT_THROW(sgd_step(p, at::zeros({4}), none, scalars(0.9F, 0, 0, false)), Error);
  EXPECT_NO_THROW(sgd_step(p, at::zeros({4}), none, scalars(0.0F, 0, 0, false)));
}

}  // namespace
}  // namespace dpt::kernels
