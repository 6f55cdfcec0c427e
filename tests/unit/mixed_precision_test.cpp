// Mixed precision: the autocast region on the CPU (bf16 matmuls inside, float32 outside, float32 gradients of
// float32 parameters), fp16 refused where LibTorch's CPU autocast cannot run it, the loss scale's growth and backoff.
#include "train/mixed_precision.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "core/error.h"

namespace dpt::train {
namespace {

TEST(MixedPrecision, Bf16AutocastOnTheCpuKeepsFloat32MasterWeights) {
  torch::nn::Linear layer(16, 4);
  const torch::Tensor x = torch::randn({8, 16});
  torch::Tensor inside;
  {
    const AutocastGuard autocast(Precision::BFloat16, at::kCPU);
    inside = layer->forward(x);
  }
  EXPECT_EQ(inside.scalar_type(), at::kBFloat16);
  EXPECT_EQ(layer->forward(x).scalar_type(), at::kFloat) << "autocast must end with the guard";
  inside.to(at::kFloat).sum().backward();
  EXPECT_EQ(layer->weight.grad().scalar_type(), at::kFloat);
  // The bf16 result is the float32 one to bf16 precision (8 bits of mantissa), not something else.
  EXPECT_TRUE(torch::allclose(inside.to(at::kFloat), layer->forward(x), 0.05, 0.05));
}

TEST(MixedPrecision, Fp32IsNoRegion) {
  torch::nn::Linear layer(4, 4);
  const AutocastGuard autocast(Precision::Float32, at::kCPU);
  EXPECT_EQ(layer->forward(torch::randn({2, 4})).scalar_type(), at::kFloat);
}

TEST(MixedPrecision, CpuFp16IsRefusedWhereAutocastCannotRunIt) {
  EXPECT_NO_THROW(check_precision(Precision::BFloat16, at::kCPU));
  if (TORCH_VERSION_MAJOR < 2) {
    try {
      check_precision(Precision::Float16, at::kCPU);
      FAIL() << "LibTorch 1.13's CPU autocast runs bf16 only; fp16 must be refused";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("train.precision = \"fp16\" on cpu"), std::string::npos) << e.message();
    }
  }
}

TEST(MixedPrecision, NamesAreCheckedWithAHint) {
  EXPECT_EQ(parse_precision("bf16"), Precision::BFloat16);
  try {
    parse_precision("bf61");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("bf16"), std::string::npos) << e.message();
  }
}

TEST(LossScale, HalvesOnOverflowAndDoublesAfterTheGrowthInterval) {
  LossScale scale;
  scale.update(false, 3);
  EXPECT_EQ(scale.value, 32768.0);
  scale.update(true, 3);
  scale.update(true, 3);
  EXPECT_EQ(scale.value, 32768.0);
  scale.update(true, 3);
  EXPECT_EQ(scale.value, 65536.0);
  EXPECT_EQ(scale.good_steps, 0);
  scale.update(true, 3);
  scale.update(false, 3);
  EXPECT_EQ(scale.value, 32768.0);
  EXPECT_EQ(scale.good_steps, 0) << "an overflow restarts the growth count";
}

}  // namespace
}  // namespace dpt::train
