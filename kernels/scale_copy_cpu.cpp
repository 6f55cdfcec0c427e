// CPU path and reference of scale_copy, and the device dispatch of the host API.
#include "kernels/scale_copy.h"

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/cuda_stream.h"
#include "kernels/scale_copy_cuda.h"
#endif

namespace dpt::kernels {

void scale_copy_cpu(float* dst, const float* src, std::int64_t n, float scale) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] * scale;
}

void scale_copy(at::Tensor& dst, const at::Tensor& src, double scale) {
  DPT_CHECK(dst.numel() == src.numel(), "scale_copy: dst has ", dst.numel(), " elements but src has ", src.numel());
  DPT_CHECK(dst.scalar_type() == src.scalar_type() && dst.device() == src.device(),
            "scale_copy: dst and src must share dtype and device (", dst.toString(), " vs ", src.toString(), ")");
  DPT_CHECK(dst.is_contiguous(), "scale_copy: dst must be contiguous");
  const at::Tensor source = src.contiguous();
  const std::int64_t n = dst.numel();
  if (dst.scalar_type() == at::kFloat) {
    if (dst.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
      check_launch(cuda::scale_copy_f32(dst.data_ptr<float>(), source.data_ptr<float>(), n,
                                        static_cast<float>(scale), current_cuda_stream(dst.device().index())),
                   "scale_copy");
      return;
#else
      no_cuda_kernels("scale_copy");
#endif
    }
    scale_copy_cpu(dst.data_ptr<float>(), source.data_ptr<float>(), n, static_cast<float>(scale));
    return;
  }
  // Other dtypes: one fused ATen op (reads src once, writes dst once).
  at::mul_out(dst, source.view(dst.sizes()), scale);
}

}  // namespace dpt::kernels
