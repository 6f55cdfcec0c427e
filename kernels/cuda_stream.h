// current_cuda_stream: the stream LibTorch queues this thread's work for a device on, as an opaque handle, so that
// kernels and collectives run in order with the caller's ops without LibTorch's CUDA headers in their own files.
#pragma once

namespace dpt::kernels {

// c10's current CUDA stream of `device` (a cudaStream_t). With a LibTorch built without CUDA (no CUDA tensors can
// exist, the kernels are only compiled) the legacy default stream. Only in builds with the CUDA kernels.
void* current_cuda_stream(int device);

}  // namespace dpt::kernels
