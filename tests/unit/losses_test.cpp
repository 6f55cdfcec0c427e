// Losses: cross-entropy over the last dimension (language-model logits), mean squared error, and the error a
// label outside the model's classes gets.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/check.h"
#include "train/losses.h"

namespace dpt::train {
namespace {

TEST(Losses, CrossEntropyOverTheLastDimensionTakesLanguageModelLogits) {
  torch::manual_seed(3);
  const at::Tensor logits = torch::randn({2, 5, 7});
  const at::Tensor labels = torch::randint(0, 7, {2, 5}, at::kLong);
  const Loss& loss = losses().get("cross_entropy");
  EXPECT_TRUE(loss.classification);
  // The mean over all 10 positions, each position its own softmax over the 7 classes.
  const at::Tensor expected = -torch::log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).mean();
  EXPECT_NEAR(loss.mean(logits, labels).item<double>(), expected.item<double>(), 1e-6);
  // [B, C] logits are the usual classification case.
  const at::Tensor flat = logits.reshape({10, 7});
  EXPECT_NEAR(loss.mean(flat, labels.reshape({10})).item<double>(), expected.item<double>(), 1e-6);
}

TEST(Losses, MeanSquaredErrorWidensTargets) {
  const at::Tensor output = torch::tensor({1.0f, 2.0f, 4.0f}).reshape({3, 1});
  const at::Tensor target = torch::tensor({1, 1, 1}, at::kLong);
  const Loss& loss = losses().get("mse");
  EXPECT_FALSE(loss.classification);
  EXPECT_NEAR(loss.mean(output, target).item<double>(), (0.0 + 1.0 + 9.0) / 3.0, 1e-6);
}

TEST(Losses, UnknownLossSuggestsTheClosestName) {
  try {
    losses().get("cross_entropi");
    FAIL() << "expected a dpt::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("did you mean 'cross_entropy'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("train.loss"), std::string::npos) << e.message();
  }
}

TEST(Losses, ALabelOutsideTheClassesNamesItsSample) {
  const at::Tensor labels = torch::tensor({3, 9, 12, 1}, at::kLong);
  const auto locate = [](std::int64_t row) { return "sample " + std::to_string(100 + row) + " of train.h5"; };
  const std::string message = check_class_labels(labels, 10, locate);
  EXPECT_NE(message.find("label 12 of sample 102 of train.h5"), std::string::npos) << message;
  EXPECT_NE(message.find("10 classes"), std::string::npos) << message;
  EXPECT_EQ(check_class_labels(labels, 13, locate), "");
  EXPECT_NE(check_class_labels(torch::tensor({-1}, at::kLong), 10, locate).find("label -1"), std::string::npos);
  // Per-position labels ([B, T]) name the sample of the row.
  EXPECT_NE(check_class_labels(torch::tensor({{1, 2}, {3, 10}}, at::kLong), 10, locate).find("sample 101"),
            std::string::npos);
}

}  // namespace
}  // namespace dpt::train
