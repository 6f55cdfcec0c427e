// grad_norm: per-tensor sums of squares and non-finite counts against ATen's math in double, on awkward sizes and
// unaligned views; clipping against LibTorch's clip_grad_norm_; the same bits at any thread count.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/grad_norm.h"

namespace dpt::kernels {
namespace {

// Tensors of the awkward sizes, one of them an unaligned view (starts one float into its storage).
std::vector<at::Tensor> awkward_tensors() {
  std::vector<at::Tensor> tensors;
  for (std::int64_t n : {0, 1, 7, (1 << 20) + 3, 65536, 65537}) tensors.push_back(at::randn({n}) * 3);
  tensors.push_back(at::randn({1001}).narrow(0, 1, 1000));
  tensors.push_back(at::randn({3, 5}));
  return tensors;
}

TEST(GradNorm, SumsOfSquaresMatchDoubleMath) {
  const auto tensors = awkward_tensors();
  const at::Tensor stats = gradient_stats(tensors);
  ASSERT_EQ(stats.size(0), static_cast<std::int64_t>(tensors.size()) + 1);
  double total = 0.0;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const double expected = tensors[t].to(at::kDouble).square().sum().item<double>();
    total += expected;
    EXPECT_NEAR(stats[t][0].item<double>(), expected, 1e-12 * std::max(1.0, expected)) << "tensor " << t;
    EXPECT_EQ(stats[t][1].item<double>(), 0.0);
  }
  EXPECT_NEAR(stats[-1][0].item<double>(), total, 1e-12 * total);
  // One element off by a little must show: the sums are not approximations.
  auto changed = tensors;
  changed[3] = changed[3].clone();
  changed[3][12345] += 1e-3;
  EXPECT_NE(gradient_stats(changed)[3][0].item<double>(), stats[3][0].item<double>());
}

TEST(GradNorm, ReferenceLoopAgreesWithDoubleMath) {
  for (std::int64_t n : {0, 1, 7, 8, 9, (1 << 20) + 3}) {
    const at::Tensor x = at::randn({n});
    double sum = 0.0;
    std::int64_t bad = 0;
    gradient_stats_cpu(x.data_ptr<float>(), n, &sum, &bad);
    const double expected = x.to(at::kDouble).square().sum().item<double>();
    EXPECT_NEAR(sum, expected, 1e-12 * std::max(1.0, expected)) << "n=" << n;
    EXPECT_EQ(bad, 0);
  }
}

TEST(GradNorm, CountsNonFiniteValuesPerTensor) {
  auto tensors = awkward_tensors();
  tensors[2][6] = std::numeric_limits<float>::quiet_NaN();
  tensors[3][(1 << 20) + 2] = std::numeric_limits<float>::infinity();
  tensors[3][0] = -std::numeric_limits<float>::infinity();
  const at::Tensor stats = gradient_stats(tensors);
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const double expected = t == 2 ? 1 : t == 3 ? 2 : 0;
    EXPECT_EQ(stats[t][1].item<double>(), expected) << "tensor " << t;
  }
  EXPECT_EQ(stats[-1][1].item<double>(), 3.0);
  EXPECT_FALSE(std::isfinite(stats[-1][0].item<double>()));
}

// The count is taken only where a sum of squares is not finite: the largest floats square to finite doubles.
TEST(GradNorm, LargestFiniteFloatsAreFinite) {
  const float big = std::numeric_limits<float>::max();
  const std::vector<at::Tensor> tensors = {at::full({(1 << 17) + 5}, big), at::full({3}, -big)};
  const at::Tensor stats = gradient_stats(tensors);
  EXPECT_EQ(stats[-1][1].item<double>(), 0.0);
  const double square = static_cast<double>(big) * static_cast<double>(big);
  const double first = square * ((1 << 17) + 5);
  const double all = square * ((1 << 17) + 8);
  EXPECT_NEAR(stats[0][0].item<double>(), first, first * 1e-12);
  EXPECT_NEAR(stats[-1][0].item<double>(), all, all * 1e-12);
}

TEST(GradNorm, SameBitsAtAnyThreadCount) {
  const auto tensors = awkward_tensors();
  at::set_num_threads(1);
  const at::Tensor one = gradient_stats(tensors);
  at::set_num_threads(3);
  const at::Tensor three = gradient_stats(tensors);
  EXPECT_TRUE(at::equal(one, three));
}

TEST(GradNorm, ClipMatchesLibTorchsClipGradNorm) {
  for (double max_norm : {0.5, 1e6}) {
    const auto tensors = awkward_tensors();
    std::vector<at::Tensor> mine;
    for (const auto& t : tensors) mine.push_back(t.clone());
    clip_and_unscale(mine, gradient_stats(mine), max_norm, 1.0);
    // clip_grad_norm_'s arithmetic, in double.
    double total = 0.0;
    for (const auto& t : tensors) total += t.to(at::kDouble).square().sum().item<double>();
    const double coefficient = std::min(1.0, max_norm / (std::sqrt(total) + 1e-6));
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      const at::Tensor expected = (tensors[t].to(at::kDouble) * coefficient).to(at::kFloat);
      EXPECT_TRUE(at::allclose(mine[t], expected, 1e-6, 1e-7)) << "max_norm " << max_norm << ", tensor " << t;
      if (coefficient == 1.0) {
        EXPECT_TRUE(at::equal(mine[t], tensors[t]));
      }
    }
  }
}

TEST(GradNorm, UnscalingFoldsIntoTheClip) {
  // Gradients of a loss scaled by 1024: unscaled and clipped in one pass, clipped on the unscaled norm.
  std::vector<at::Tensor> scaled = {at::randn({7}) * 1024, at::randn({65537}) * 1024};
  std::vector<at::Tensor> plain = {scaled[0] / 1024, scaled[1] / 1024};
  const double norm = std::sqrt(gradient_stats(plain)[-1][0].item<double>());
  clip_and_unscale(scaled, gradient_stats(scaled), norm / 2, 1.0 / 1024);
  for (std::size_t t = 0; t < 2; ++t) EXPECT_TRUE(at::allclose(scaled[t], plain[t] * 0.5, 1e-5, 1e-6));
  EXPECT_DOUBLE_EQ(clip_factor(4.0, 0.0, 0.25), 0.25);
  EXPECT_DOUBLE_EQ(clip_factor(400.0, 1.0, 1.0), 1.0 / (20.0 + 1e-6));
}

TEST(GradNorm, RefusesWhatItCannotRead) {
  EXPECT_THROW(gradient_stats({at::zeros({4}, at::kDouble)}), Error);
  EXPECT_THROW(gradient_stats({at::zeros({4, 4}).t()}), Error);
  std::vector<at::Tensor> tensors = {at::zeros({4})};
  EXPECT_THROW(clip_and_unscale(tensors, at::zeros({1, 2}, at::kDouble), 1.0, 1.0), Error);
  EXPECT_EQ(gradient_stats({}).size(0), 1);
}

}  // namespace
}  // namespace dpt::kernels
