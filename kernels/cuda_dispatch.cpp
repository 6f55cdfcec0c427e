// check_launch and no_cuda_kernels, built in every configuration.
#include "kernels/cuda_dispatch.h"

#include "core/check.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/scale_copy_cuda.h"
#endif

namespace dpt::kernels {

void check_launch(int code, const char* op) {
#ifdef DPTRAIN_HAS_CUDA
  DPT_CHECK(code == 0, "CUDA ", op, " failed: ", cuda::error_string(code));
#else
  DPT_CHECK(code == 0, "CUDA ", op, " failed with code ", code);
#endif
}

void no_cuda_kernels(const char* op) {
  DPT_THROW(op, " on a CUDA tensor, but dptrain was built without CUDA kernels: rebuild with -DDPTRAIN_WITH_CUDA=ON");
}

}  // namespace dpt::kernels
