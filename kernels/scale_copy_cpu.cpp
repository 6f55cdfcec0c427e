// CPU path and reference of scale_copy, and the device dispatch of the host API.
#include "kernels/scale_copy.h"

#include <cstring>

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/cuda_stream.h"
#include "kernels/scale_copy_cuda.h"
#endif

namespace dpt::kernels {

bool scale_copy_cpu(float* dst, const float* src, std::int64_t n, float scale) {
  // x - x is +0 (all bits clear) for every finite x and NaN for NaN and infinity: OR-ing its bits over the elements
  // is an integer reduction the compiler vectorises along with the multiply, so the check costs no pass of its own
  // (docs/benchmarks.md). It needs IEEE arithmetic: -ffast-math would fold x - x to 0 (kernels_test then fails).
  std::uint32_t nonfinite = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = src[i];
    const float zero_if_finite = x - x;
    std::uint32_t bits;
    std::memcpy(&bits, &zero_if_finite, sizeof(bits));
    nonfinite |= bits;
    dst[i] = x * scale;
  }
  return nonfinite != 0;
}

void scale_copy(at::Tensor& dst, const at::Tensor& src, double scale, const at::Tensor& nonfinite) {
  DPT_CHECK(dst.numel() == src.numel(), "scale_copy: dst has ", dst.numel(), " elements but src has ", src.numel());
  DPT_CHECK(dst.scalar_type() == src.scalar_type() && dst.device() == src.device(),
            "scale_copy: dst and src must share dtype and device (", dst.toString(), " vs ", src.toString(), ")");
  DPT_CHECK(dst.is_contiguous(), "scale_copy: dst must be contiguous");
  if (nonfinite.defined()) {
    DPT_CHECK(nonfinite.scalar_type() == at::kInt && nonfinite.numel() == 1 && nonfinite.device() == dst.device(),
              "scale_copy: the non-finite flag must be one int32 on ", dst.device(), " (got ", nonfinite.toString(),
              " of ", nonfinite.numel(), ")");
  }
  const at::Tensor source = src.contiguous();
  const std::int64_t n = dst.numel();
  if (dst.scalar_type() == at::kFloat) {
    if (dst.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
      int* flag = nonfinite.defined() ? nonfinite.data_ptr<std::int32_t>() : nullptr;
      check_launch(cuda::scale_copy_f32(dst.data_ptr<float>(), source.data_ptr<float>(), n,
                                        static_cast<float>(scale), flag, current_cuda_stream(dst.device().index())),
                   "scale_copy");
      return;
#else
      no_cuda_kernels("scale_copy");
#endif
    }
    const bool found = scale_copy_cpu(dst.data_ptr<float>(), source.data_ptr<float>(), n, static_cast<float>(scale));
    if (found && nonfinite.defined()) nonfinite.data_ptr<std::int32_t>()[0] = 1;
    return;
  }
  // Other dtypes: one fused ATen op (reads src once, writes dst once); the check, where asked, is a pass of its own.
  if (nonfinite.defined()) nonfinite.masked_fill_(at::isfinite(source).all().logical_not(), 1);
  at::mul_out(dst, source.view(dst.sizes()), scale);
}

}  // namespace dpt::kernels
