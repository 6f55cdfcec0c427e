// scale_copy: the host API against the CPU reference, on awkward sizes and every supported dtype.
#include <gtest/gtest.h>

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

TEST(ScaleCopy, MismatchedArgumentsAreClearErrors) {
  at::Tensor a = at::zeros({4});
  at::Tensor b = at::zeros({5});
  EXPECT_THROW(scale_copy(a, b, 1.0), Error);
  at::Tensor c = at::zeros({4}, at::kDouble);
  EXPECT_THROW(scale_copy(a, c, 1.0), Error);
}

}  // namespace
}  // namespace dpt::kernels
