// scale_copy: the host API against the CPU reference, on awkward sizes and every supported dtype.
#include <gtest/gtest.h>

#include <limits>

#include "core/check.h"
#include "kernels/scale_copy.h"

namespace dpt::kernels {
namespace {

TEST(ScaleCopy, MatchesReferenceOnAwkwardSizes) {
  for (std::int64_t n : {0, 1, 3, 4, 5, 1023, 4097, 100003}) {
    at::Tensor src = at::randn({n});
    at::Tensor dst = at::empty({n});
    scale_copy(dst, src, 0.25);
    std::vector<float> expected(static_cast<std::size_t>(n));
    scale_copy_cpu(expected.data(), src.data_ptr<float>(), n, 0.25f);
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(dst[i].item<float>(), expected[static_cast<std::size_t>(i)]);
    EXPECT_TRUE(at::equal(dst, src * 0.25f)) << "n=" << n;
  }
}

TEST(ScaleCopy, InPlaceAndNonContiguousSource) {
  at::Tensor t = at::arange(12, at::kFloat);
  scale_copy(t, t, 2.0);
  EXPECT_TRUE(at::equal(t, at::arange(12, at::kFloat) * 2));
  at::Tensor src = at::arange(12, at::kFloat).view({3, 4}).t();
  at::Tensor dst = at::empty({12});
  scale_copy(dst, src, -1.0);
  EXPECT_TRUE(at::equal(dst, -src.contiguous().view({12})));
}

TEST(ScaleCopy, OtherDtypesUseTheFusedAtenPath) {
  for (auto dtype : {at::kDouble, at::kHalf, at::kBFloat16}) {
    at::Tensor src = at::randn({37}).to(dtype);
    at::Tensor dst = at::empty({37}, dtype);
    scale_copy(dst, src, 0.5);
    EXPECT_TRUE(at::equal(dst, src * 0.5)) << dtype;
  }
}

// The flag the Reducer reads to name the ranks whose own gradients held a NaN or an infinity: set by one such value
// anywhere (first, middle, last; in the vectorised body or the tail), never by finite extremes, and not cleared by
// a later call.
TEST(ScaleCopy, FlagsNaNAndInfinityWhereverTheyAre) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (std::int64_t n : {1, 7, 4097, (1 << 20) + 3}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf}) {
      for (std::int64_t at : {std::int64_t{0}, n / 2, n - 1}) {
        at::Tensor src = at::randn({n});
        src[at] = bad;
        at::Tensor dst = at::empty({n});
        at::Tensor flag = at::zeros({1}, at::kInt);
        scale_copy(dst, src, 0.5, flag);
        ASSERT_EQ(flag.item<int>(), 1) << "n=" << n << " value " << bad << " at " << at;
        EXPECT_TRUE(scale_copy_cpu(dst.data_ptr<float>(), src.data_ptr<float>(), n, 0.5f));
      }
    }
  }
  at::Tensor extremes = at::tensor({std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
                                    std::numeric_limits<float>::denorm_min(), -0.0f, 0.0f, 1.0f});
  at::Tensor dst = at::empty({6});
  at::Tensor flag = at::zeros({1}, at::kInt);
  scale_copy(dst, extremes, 1.0, flag);
  EXPECT_EQ(flag.item<int>(), 0) << "finite extremes are finite";
  EXPECT_TRUE(at::equal(dst, extremes));
  EXPECT_FALSE(scale_copy_cpu(dst.data_ptr<float>(), extremes.data_ptr<float>(), 6, 1.0f));
  flag.fill_(1);
  scale_copy(dst, extremes, 1.0, flag);
  EXPECT_EQ(flag.item<int>(), 1) << "a later clean copy keeps the flag";
  for (auto dtype : {at::kDouble, at::kBFloat16}) {
    at::Tensor src = at::randn({9}).to(dtype);
    at::Tensor out = at::empty({9}, dtype);
    flag.zero_();
    scale_copy(out, src, 2.0, flag);
    EXPECT_EQ(flag.item<int>(), 0) << dtype;
    src[4] = std::numeric_limits<double>::quiet_NaN();
    scale_copy(out, src, 2.0, flag);
    EXPECT_EQ(flag.item<int>(), 1) << dtype;
  }
  EXPECT_THROW(scale_copy(dst, extremes, 1.0, at::zeros({1})), Error);
}

TEST(ScaleCopy, MismatchedArgumentsAreClearErrors) {
  at::Tensor a = at::zeros({4});
  at::Tensor b = at::zeros({5});
  EXPECT_THROW(scale_copy(a, b, 1.0), Error);
  at::Tensor c = at::zeros({4}, at::kDouble);
  EXPECT_THROW(scale_copy(a, c, 1.0), Error);
}

}  // namespace
}  // namespace dpt::kernels
