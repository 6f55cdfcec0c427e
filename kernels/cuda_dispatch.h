// The CUDA branch every kernel's host API shares: a launch's status checked, or the one error of a build without
// the CUDA kernels.
#pragma once

namespace dpt::kernels {

// Throws a dpt::Error naming `op` and CUDA's message unless `code` (a launch's cudaError_t) is 0.
void check_launch(int code, const char* op);

// Throws: `op` got a CUDA tensor, but this build has no CUDA kernels.
[[noreturn]] void no_cuda_kernels(const char* op);

}  // namespace dpt::kernels
