// current_cuda_stream from c10's stream registry, in the one file that includes LibTorch's CUDA headers (compiled
// only with the CUDA kernels; DPTRAIN_TORCH_CUDA when the LibTorch found has c10_cuda).
#include "kernels/cuda_stream.h"

#include <cuda_runtime.h>

#ifdef DPTRAIN_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace dpt::kernels {

void* current_cuda_stream(int device) {
#ifdef DPTRAIN_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  static_cast<void>(device);
  return cudaStreamLegacy;
#endif
}

}  // namespace dpt::kernels
