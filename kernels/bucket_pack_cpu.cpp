// CPU path and reference of bucket_pack, and the device dispatch of the host API.
#include "kernels/bucket_pack.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DPTRAIN_F16C
#endif

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/bucket_pack_cuda.h"
#include "kernels/cuda_stream.h"
#endif

namespace dpt::kernels {
namespace {

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

void check_pair(const at::Tensor& wire, const at::Tensor& flat, const char* op) {
  DPT_CHECK((wire.scalar_type() == at::kBFloat16 || wire.scalar_type() == at::kHalf) &&
                flat.scalar_type() == at::kFloat && wire.is_contiguous() && flat.is_contiguous() &&
                wire.numel() == flat.numel() && wire.device() == flat.device(),
            op, ": the wire copy must be a contiguous bfloat16 or float16 tensor and the bucket a contiguous float32 ",
            "one of the same numel and device (got ", wire.toString(), " of ", wire.numel(), " and ", flat.toString(),
            " of ", flat.numel(), ")");
}

// Pieces of 256 KiB of floats per thread.
constexpr std::int64_t kGrain = 65536;

#ifdef DPTRAIN_F16C
// x86's F16C conversions, 8 values at a time, where the CPU has them (checked at run time: the build targets plain
// x86-64). Both round to nearest even as c10's scalar conversions do; a NaN becomes c10's quiet NaN (sign | 0x7E00)
// before the conversion, so the bits equal c10's for every input. They return how many elements they did (the
// multiples of 8); the scalar loop does the rest.
bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}

__attribute__((target("avx,f16c"))) std::int64_t pack_fp16_f16c(std::uint16_t* wire, const float* flat,
                                                                 std::int64_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000U)));
  const __m256 quiet_nan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000));
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_mul_ps(_mm256_loadu_ps(flat + i), s);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    x = _mm256_blendv_ps(x, _mm256_or_ps(_mm256_and_ps(x, sign), quiet_nan), nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(wire + i),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  return i;
}

__attribute__((target("avx,f16c"))) std::int64_t unpack_fp16_f16c(float* flat, const std::uint16_t* wire,
                                                                   std::int64_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wire + i)));
    _mm256_storeu_ps(flat + i, _mm256_mul_ps(x, s));
  }
  return i;
}
#endif

}  // namespace

void pack_bf16_cpu(std::uint16_t* wire, const float* flat, std::int64_t n, float scale) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = flat[i] * scale;
    const std::uint32_t u = bits_of(x);
    // Round to nearest, ties to even, on the 16 bits that stay; a NaN keeps a quiet NaN (the add could carry it
    // into infinity).
    wire[i] = x != x ? std::uint16_t{0x7FC0} : static_cast<std::uint16_t>((u + 0x7FFFU + ((u >> 16) & 1U)) >> 16);
  }
}

void unpack_bf16_cpu(float* flat, const std::uint16_t* wire, std::int64_t n, float scale) {
  for (std::int64_t i = 0; i < n; ++i) flat[i] = float_of(static_cast<std::uint32_t>(wire[i]) << 16) * scale;
}

void pack_fp16_cpu(std::uint16_t* wire, const float* flat, std::int64_t n, float scale) {
  std::int64_t done = 0;
#ifdef DPTRAIN_F16C
  if (cpu_has_f16c()) done = pack_fp16_f16c(wire, flat, n, scale);
#endif
  for (std::int64_t i = done; i < n; ++i) wire[i] = c10::detail::fp16_ieee_from_fp32_value(flat[i] * scale);
}

void unpack_fp16_cpu(float* flat, const std::uint16_t* wire, std::int64_t n, float scale) {
  std::int64_t done = 0;
#ifdef DPTRAIN_F16C
  if (cpu_has_f16c()) done = unpack_fp16_f16c(flat, wire, n, scale);
#endif
  for (std::int64_t i = done; i < n; ++i) flat[i] = c10::detail::fp16_ieee_to_fp32_value(wire[i]) * scale;
}

namespace {

// Both directions: `pack` writes the wire copy from the bucket, else the bucket from the wire copy.
void convert(const at::Tensor& wire, const at::Tensor& flat, double scale, void* stream, bool pack) {
  const char* op = pack ? "pack_bucket" : "unpack_bucket";
  check_pair(wire, flat, op);
  const bool bf16 = wire.scalar_type() == at::kBFloat16;
  auto* w = static_cast<std::uint16_t*>(wire.data_ptr());
  float* f = flat.data_ptr<float>();
  const auto s = static_cast<float>(scale);
  const std::int64_t n = flat.numel();
  if (flat.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
    void* on = stream ? stream : current_cuda_stream(flat.device().index());
    check_launch(pack ? cuda::pack_bucket_f32(w, f, n, s, bf16, on) : cuda::unpack_bucket_f32(f, w, n, s, bf16, on), op);
    return;
#else
    static_cast<void>(stream);
    no_cuda_kernels(op);
#endif
  }
  at::parallel_for(0, n, kGrain, [&](std::int64_t begin, std::int64_t end) {
    if (pack) {
      (bf16 ? pack_bf16_cpu : pack_fp16_cpu)(w + begin, f + begin, end - begin, s);
    } else {
      (bf16 ? unpack_bf16_cpu : unpack_fp16_cpu)(f + begin, w + begin, end - begin, s);
    }
  });
}

}  // namespace

void pack_bucket(at::Tensor& wire, const at::Tensor& flat, double scale, void* stream) {
  convert(wire, flat, scale, stream, true);
}

void unpack_bucket(at::Tensor& flat, const at::Tensor& wire, double scale, void* stream) {
  convert(wire, flat, scale, stream, false);
}

}  // namespace dpt::kernels
