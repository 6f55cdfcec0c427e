// Tests for optimizer state as named tensors: Adam, AdamW (amsgrad) and SGD continue bit-identically after a
// save/load round trip, and state of another optimizer is refused.
#include "train/optimizer_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include <torch/optim.h>

#include "core/error.h"

namespace dpt::train {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using MakeOptimizer = std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>)>;

std::vector<torch::Tensor> make_params() {
  return {torch::linspace(-1, 1, 12).reshape({3, 4}).requires_grad_(), torch::full({3}, 0.5).requires_grad_(),
          torch::ones({2}).requires_grad_()};  // the last one never gets a gradient: it has no state
}

void step(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params, int seed) {
  optimizer.zero_grad();
  for (std::size_t i = 0; i + 1 < params.size(); ++i) {
    params[i].mutable_grad() = torch::sin(torch::arange(params[i].numel(), torch::kFloat).reshape(params[i].sizes()) +
                                          static_cast<float>(seed + static_cast<int>(i)));
  }
  optimizer.step();
}

void expect_continues_identically(const MakeOptimizer& make) {
  auto params = make_params();
  auto optimizer = make(params);
  step(*optimizer, params, 1);
  step(*optimizer, params, 2);
  const checkpoint::NamedTensors saved = optimizer_state_tensors(*optimizer);
  ASSERT_FALSE(saved.empty());

  std::vector<torch::Tensor> copies;
  for (const auto& p : params) copies.push_back(p.detach().clone().requires_grad_());
  auto resumed = make(copies);
  load_optimizer_state(*resumed, saved, "test checkpoint");
  EXPECT_EQ(optimizer_state_tensors(*resumed).size(), saved.size());
  for (int seed = 3; seed < 6; ++seed) {
    step(*optimizer, params, seed);
    step(*resumed, copies, seed);
  }
  for (std::size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], copies[i])) << "param " << i;

  // Without the state the continuation differs: the test above can fail.
  std::vector<torch::Tensor> fresh;
  for (const auto& p : params) fresh.push_back(p.detach().clone().requires_grad_());
  auto stateless = make(fresh);
  step(*stateless, fresh, 6);
  step(*optimizer, params, 6);
  EXPECT_FALSE(torch::equal(params[0], fresh[0]));
}

TEST(OptimizerState, AdamContinuesBitIdentically) {
  expect_continues_identically(
      [](std::vector<torch::Tensor> p) { return std::make_unique<torch::optim::Adam>(p, torch::optim::AdamOptions(0.1)); });
}

TEST(OptimizerState, AdamWWithAmsgradContinuesBitIdentically) {
  expect_continues_identically([](std::vector<torch::Tensor> p) {
    return std::make_unique<torch::optim::AdamW>(p, torch::optim::AdamWOptions(0.1).amsgrad(true));
  });
}

TEST(OptimizerState, SgdWithMomentumContinuesBitIdentically) {
  expect_continues_identically([](std::vector<torch::Tensor> p) {
    return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(0.1).momentum(0.9));
  });
}

TEST(OptimizerState, NamesFollowPyTorchStateDictNumbering) {
  auto params = make_params();
  torch::optim::Adam adam(params, torch::optim::AdamOptions(0.1));
  step(adam, params, 1);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : optimizer_state_tensors(adam)) names.push_back(name);
  EXPECT_THAT(names, ::testing::ElementsAre("state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "state.1.step",
                                            "state.1.exp_avg", "state.1.exp_avg_sq"));
}

TEST(OptimizerState, StateOfAnotherOptimizerIsRefused) {
  auto params = make_params();
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  step(sgd, params, 1);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(0.1));
  EXPECT_THAT([&] { load_optimizer_state(adam, optimizer_state_tensors(sgd), "v000003"); },
              ThrowsMessage<Error>(AllOf(HasSubstr("v000003"), HasSubstr("another optimizer"))));
}

}  // namespace
}  // namespace dpt::train
