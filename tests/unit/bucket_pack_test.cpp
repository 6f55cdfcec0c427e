// bucket_pack: bf16/fp16 wire copies against LibTorch's own conversions, with the scale, on awkward sizes,
// unaligned views and the values that round, overflow or are not numbers.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/bucket_pack.h"

namespace dpt::kernels {
namespace {

TEST(BucketPack, PackEqualsLibTorchsRoundingOfTheScaledBucket) {
  at::set_num_threads(2);
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    for (std::int64_t n : {0, 1, 7, (1 << 20) + 3}) {
      const at::Tensor flat = at::randn({n}) * 100;
      at::Tensor wire = at::empty({n}, dtype);
      pack_bucket(wire, flat, 0.25);
      // The reference: the scale in double, then LibTorch's float32 -> 16-bit conversion.
      const at::Tensor expected = (flat.to(at::kDouble) * 0.25).to(at::kFloat).to(dtype);
      EXPECT_TRUE(at::equal(wire, expected)) << dtype << " n=" << n;
    }
  }
}

TEST(BucketPack, UnpackWidensAndScales) {
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    const at::Tensor wire = (at::randn({(1 << 20) + 3}) * 10).to(dtype);
    at::Tensor flat = at::empty({wire.numel()});
    unpack_bucket(flat, wire, 0.5);
    EXPECT_TRUE(at::equal(flat, (wire.to(at::kDouble) * 0.5).to(at::kFloat))) << dtype;
  }
}

TEST(BucketPack, UnalignedViewsAndSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor storage = at::randn({1001});
  at::Tensor flat = storage.narrow(0, 1, 1000);  // starts 4 bytes into its storage
  flat[0] = std::numeric_limits<float>::quiet_NaN();
  flat[1] = inf;
  flat[2] = -inf;
  flat[3] = 70000.0F;        // beyond fp16's range: infinity
  flat[4] = 1.00390625F;     // 1 + 2^-8: a bf16 tie, rounds to even (1.0)
  flat[5] = 1.01171875F;     // 1 + 3 * 2^-8: a tie that rounds up
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    at::Tensor wire_storage = at::empty({1001}, dtype);
    at::Tensor wire = wire_storage.narrow(0, 1, 1000);
    pack_bucket(wire, flat, 1.0);
    const at::Tensor expected = flat.to(dtype);
    EXPECT_TRUE(at::equal(wire.isnan(), expected.isnan())) << dtype;
    EXPECT_TRUE(at::equal(wire.nan_to_num(0, inf, -inf), expected.nan_to_num(0, inf, -inf))) << dtype;
    at::Tensor back = at::empty({1000});
    unpack_bucket(back, wire, 1.0);
    EXPECT_TRUE(std::isnan(back[0].item<float>()));
    EXPECT_EQ(back[1].item<float>(), inf);
    EXPECT_EQ(back[3].item<float>(), dtype == at::kHalf ? inf : 70144.0F);
  }
  at::Tensor bf = at::empty({6}, at::kBFloat16);
  pack_bucket(bf, flat.narrow(0, 0, 6).contiguous(), 1.0);
  EXPECT_EQ(bf[4].item<float>(), 1.0F);
  EXPECT_EQ(bf[5].item<float>(), 1.015625F);
}

// The fp16 conversions (F16C where the CPU has it) bit for bit against c10's scalar ones, over float bit patterns
// of every sign and exponent (subnormal results, ties, overflow, infinities, NaNs with payloads) and over every
// 16-bit pattern, at sizes that leave a tail to the scalar loop.
TEST(BucketPack, Fp16BitsEqualC10sScalarConversionsForEveryKindOfValue) {
  std::vector<std::uint32_t> patterns;
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFULL; u += 4099) patterns.push_back(static_cast<std::uint32_t>(u));
  for (std::uint32_t u : {0x7F800001U, 0x7FC00001U, 0xFFFFFFFFU, 0x477FF000U, 0x477FEFFFU, 0x33000000U, 0x33000001U, 0x38800000U}) {
    patterns.push_back(u);  // signalling and payload NaNs, 65520 (a tie that overflows), just below, 2^-25 (+ulp), 2^-14
  }
  const auto n = static_cast<std::int64_t>(patterns.size());
  ASSERT_NE(n % 8, 0) << "the sweep leaves a tail";
  at::Tensor flat = at::empty({n});
  std::memcpy(flat.data_ptr<float>(), patterns.data(), patterns.size() * sizeof(float));
  for (float scale : {1.0F, 0.37F}) {
    at::Tensor wire = at::empty({n}, at::kHalf);
    pack_bucket(wire, flat, scale);
    const auto* got = static_cast<const std::uint16_t*>(wire.data_ptr());
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint16_t expected = c10::detail::fp16_ieee_from_fp32_value(flat.data_ptr<float>()[i] * scale);
      ASSERT_EQ(got[i], expected) << "pack of float bits 0x" << std::hex << patterns[static_cast<std::size_t>(i)]
                                  << " x " << scale;
    }
  }
  constexpr std::int64_t kHalves = 65536 + 5;
  at::Tensor halves = at::empty({kHalves}, at::kHalf);
  auto* h = static_cast<std::uint16_t*>(halves.data_ptr());
  for (std::int64_t i = 0; i < kHalves; ++i) h[i] = static_cast<std::uint16_t>(i);
  for (float scale : {1.0F, 0.5F}) {
    at::Tensor back = at::empty({kHalves});
    unpack_bucket(back, halves, scale);
    for (std::int64_t i = 0; i < kHalves; ++i) {
      const float expected = c10::detail::fp16_ieee_to_fp32_value(h[i]) * scale;
      ASSERT_EQ(std::memcmp(&back.data_ptr<float>()[i], &expected, sizeof(float)), 0)
          << "unpack of half bits 0x" << std::hex << h[i] << " x " << scale;
    }
  }
}

TEST(BucketPack, RefusesMismatchedTensors) {
  at::Tensor wire = at::empty({4}, at::kBFloat16);
  EXPECT_THROW(pack_bucket(wire, at::zeros({5}), 1.0), Error);
  at::Tensor wrong = at::empty({4}, at::kFloat);
  EXPECT_THROW(pack_bucket(wrong, at::zeros({4}), 1.0), Error);
  at::Tensor flat = at::zeros({4}, at::kDouble);
  EXPECT_THROW(unpack_bucket(flat, wire, 1.0), Error);
}

}  // namespace
}  // namespace dpt::kernels
