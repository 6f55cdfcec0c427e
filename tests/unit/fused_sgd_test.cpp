// FusedSGD against LibTorch's SGD: the same trajectory to float32 rounding over many steps (momentum, nesterov,
// weight decay), and the same checkpointed state, so either resumes the other.
#include "train/fused_sgd.h"

#include <gtest/gtest.h>

#include "train/optimizer_state.h"

namespace dpt::train {
namespace {

std::vector<torch::Tensor> make_params() {
  torch::manual_seed(5);
  return {torch::randn({3, 5}).requires_grad_(), torch::randn({100003}).requires_grad_(),
          torch::randn({7}).requires_grad_()};
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

void step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params, int seed) {
  torch::manual_seed(200 + seed);
  for (const auto& p : params) p.mutable_grad() = torch::randn(p.sizes()) * 0.1;
  optimizer.step();
}

TEST(FusedSGD, FollowsLibTorchsSgdOverManySteps) {
  for (const auto& options : {torch::optim::SGDOptions(0.05).momentum(0.9),
                              torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(0.01),
                              torch::optim::SGDOptions(0.05).momentum(0.8).dampening(0.3),
                              torch::optim::SGDOptions(0.05)}) {
    const auto start = make_params();
    auto theirs = clones(start);
    auto mine = clones(start);
    torch::optim::SGD plain(theirs, options);
    FusedSGD fused(mine, options);
    for (int s = 0; s < 30; ++s) {
      step(plain, theirs, s);
      step(fused, mine, s);
    }
    for (std::size_t i = 0; i < start.size(); ++i) {
      EXPECT_TRUE(torch::allclose(mine[i], theirs[i], 1e-5, 1e-6)) << "parameter " << i;
      EXPECT_FALSE(torch::allclose(mine[i], start[i], 1e-5, 1e-6)) << "parameter " << i << " never moved";
    }
  }
}

TEST(FusedSGD, StateIsLibTorchsSoEitherResumesTheOther) {
  const auto options = torch::optim::SGDOptions(0.05).momentum(0.9);
  const auto start = make_params();
  auto a = clones(start);
  FusedSGD fused(a, options);
  for (int s = 0; s < 3; ++s) step(fused, a, s);
  auto b = clones(a);
  torch::optim::SGD plain(b, options);
  load_optimizer_state(plain, optimizer_state_tensors(fused), "a FusedSGD's state");
  auto c = clones(a);
  FusedSGD fused_again(c, options);
  load_optimizer_state(fused_again, optimizer_state_tensors(fused), "a FusedSGD's state");
  step(fused, a, 9);
  step(plain, b, 9);
  step(fused_again, c, 9);
  for (std::size_t i = 0; i < start.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-6, 1e-7));
    EXPECT_TRUE(torch::equal(a[i], c[i]));
  }
}

}  // namespace
}  // namespace dpt::train
