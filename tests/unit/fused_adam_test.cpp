// FusedAdam/FusedAdamW against LibTorch's Adam/AdamW: the same trajectory to float32 rounding over many steps,
// the same state (interchangeable both ways), LibTorch's own step where the kernel does not apply.
#include "train/fused_adam.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "train/optimizer_state.h"

namespace dpt::train {
namespace {

using MakeOptimizer = std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>)>;

// Sizes that split unevenly over threads and vector lanes; the last parameter never gets a gradient.
std::vector<torch::Tensor> make_params(at::ScalarType dtype = at::kFloat) {
  torch::manual_seed(3);
  return {torch::randn({3, 5}, dtype).requires_grad_(), torch::randn({100003}, dtype).requires_grad_(),
          torch::randn({7}, dtype).requires_grad_(), torch::randn({2}, dtype).requires_grad_()};
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// Gradients of varied scale and sign, the same for both optimizers at a given step.
void step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params, int seed) {
  optimizer.zero_grad();
  torch::manual_seed(100 + seed);
  for (std::size_t i = 0; i + 1 < params.size(); ++i) {
    params[i].mutable_grad() = torch::randn(params[i].sizes(), params[i].options()) * (0.1 * (seed % 5 + 1));
  }
  optimizer.step();
}

// The largest difference between two sets of tensors, relative to each tensor's typical size.
double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const torch::Tensor x = a[i].detach().to(at::kDouble);
    const torch::Tensor y = b[i].detach().to(at::kDouble);
    worst = std::max(worst, (x - y).abs().max().item<double>() / (y.abs().mean().item<double>() + 1e-12));
  }
  return worst;
}

void expect_same_trajectory(const MakeOptimizer& fused, const MakeOptimizer& reference, double tolerance) {
  auto params = make_params();
  auto copies = clones(params);
  auto a = fused(params);
  auto b = reference(copies);
  const auto start = clones(params);
  for (int s = 1; s <= 50; ++s) {
    step(*a, params, s);
    step(*b, copies, s);
  }
  EXPECT_LE(max_difference(params, copies), tolerance);
  EXPECT_GE(max_difference(params, start), 1e-2) << "the parameters hardly moved: the comparison proves nothing";
  EXPECT_TRUE(torch::equal(params.back(), start.back())) << "a parameter without gradient changed";
  // The state has the same entries and values, so checkpoints do not depend on which class saved them.
  const auto state_a = optimizer_state_tensors(*a);
  const auto state_b = optimizer_state_tensors(*b);
  ASSERT_EQ(state_a.size(), state_b.size());
  for (std::size_t i = 0; i < state_a.size(); ++i) {
    EXPECT_EQ(state_a[i].first, state_b[i].first);
    EXPECT_LE(max_difference({state_a[i].second}, {state_b[i].second}), tolerance) << state_a[i].first;
  }
}

template <typename Optimizer, typename Options>
MakeOptimizer maker(Options options) {
  return [options](std::vector<torch::Tensor> p) { return std::make_unique<Optimizer>(p, options); };
}

// LibTorch's vectorised kernels fuse some multiply-adds, so single elements differ in the last bit from the first
// step on; over 50 steps that grows to about 5e-5 of the parameters' size.
constexpr double kTolerance = 2e-4;

TEST(FusedAdam, FollowsLibTorchAdam) {
  const auto options = torch::optim::AdamOptions(0.05);
  expect_same_trajectory(maker<FusedAdam>(options), maker<torch::optim::Adam>(options), kTolerance);
}

TEST(FusedAdam, FollowsLibTorchAdamWithWeightDecayAndOtherBetas) {
  const auto options = torch::optim::AdamOptions(0.02).weight_decay(0.1).betas({0.8, 0.99}).eps(1e-6);
  expect_same_trajectory(maker<FusedAdam>(options), maker<torch::optim::Adam>(options), kTolerance);
}

TEST(FusedAdam, FollowsLibTorchAdamW) {
  const auto options = torch::optim::AdamWOptions(0.05).weight_decay(0.3);
  expect_same_trajectory(maker<FusedAdamW>(options), maker<torch::optim::AdamW>(options), kTolerance);
}

TEST(FusedAdam, AmsgradRunsLibTorchsStepExactly) {
  const auto options = torch::optim::AdamWOptions(0.05).amsgrad(true);
  expect_same_trajectory(maker<FusedAdamW>(options), maker<torch::optim::AdamW>(options), 0.0);
}

TEST(FusedAdam, DoubleParametersRunLibTorchsStepExactly) {
  auto params = make_params(at::kDouble);
  auto copies = clones(params);
  FusedAdam a(params, torch::optim::AdamOptions(0.05));
  torch::optim::Adam b(copies, torch::optim::AdamOptions(0.05));
  for (int s = 1; s <= 5; ++s) {
    step(a, params, s);
    step(b, copies, s);
  }
  for (std::size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], copies[i])) << i;
}

// A run resumed from a checkpoint written by either class continues the same way.
TEST(FusedAdam, StateMovesBetweenFusedAndLibTorchAdam) {
  const auto options = torch::optim::AdamOptions(0.05).weight_decay(0.01);
  auto params = make_params();
  torch::optim::Adam reference(params, options);
  for (int s = 1; s <= 3; ++s) step(reference, params, s);
  auto copies = clones(params);
  FusedAdam fused(copies, options);
  load_optimizer_state(fused, optimizer_state_tensors(reference), "test checkpoint");
  auto again = clones(params);
  FusedAdam fresh(again, options);  // no state: its next step is a first step
  for (int s = 4; s <= 8; ++s) {
    step(reference, params, s);
    step(fused, copies, s);
    step(fresh, again, s);
  }
  EXPECT_LE(max_difference(copies, params), kTolerance);
  EXPECT_GE(max_difference(again, params), 20 * kTolerance) << "the loaded state made no difference";
}

}  // namespace
}  // namespace dpt::train
