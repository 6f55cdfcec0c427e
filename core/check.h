// DPT_CHECK and friends: throw dpt::Error with rank, host, file:line and a message that says what to do.
#pragma once

#include <sstream>
#include <string>

#include "core/error.h"

namespace dpt::detail {

template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace dpt::detail

#define DPT_THROW(...) \
  throw ::dpt::Error(::dpt::detail::concat(__VA_ARGS__), ::dpt::SourceLocation{__FILE__, __LINE__})

// DPT_CHECK(cond, "what failed; what to do", values...)
#define DPT_CHECK(cond, ...)   \
  do {                         \
    if (!(cond)) {             \
      DPT_THROW(__VA_ARGS__);  \
    }                          \
  } while (0)

// DPT_CHECK_STATUS(text, call, type, ok, describe): runs `call`, whose `type` result must equal `ok`; otherwise
// throws naming the call (`text`, stringized unexpanded by the wrappers below) and the library's `describe(rc)`.
#define DPT_CHECK_STATUS(text, call, type, ok, describe)   \
  do {                                                     \
    type dpt_status_rc_ = (call);                          \
    if (dpt_status_rc_ != (ok)) {                          \
      DPT_THROW(text, " failed: ", describe(dpt_status_rc_)); \
    }                                                      \
  } while (0)

// DPT_CHECK_MPI(MPI_Call(...)): names the call and MPI's own error string.
#define DPT_CHECK_MPI(call) DPT_CHECK_STATUS(#call, call, int, 0, ::dpt::detail::mpi_error_string)

namespace dpt::detail {
// Defined in runtime.cpp so that this header does not pull in mpi.h.
std::string mpi_error_string(int code);
}  // namespace dpt::detail

// DPT_CHECK_CUDA(cudaCall(...)) and DPT_CHECK_NCCL(ncclCall(...)): name the call and the library's own error string.
// Usable only in files that include <cuda_runtime.h> / <nccl.h>; this header itself stays free of both.
#define DPT_CHECK_CUDA(call) DPT_CHECK_STATUS(#call, call, cudaError_t, cudaSuccess, cudaGetErrorString)
#define DPT_CHECK_NCCL(call) DPT_CHECK_STATUS(#call, call, ncclResult_t, ncclSuccess, ncclGetErrorString)
