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

// DPT_CHECK_MPI(MPI_Call(...)): names the call and MPI's own error string.
#define DPT_CHECK_MPI(call)                                                              \
  do {                                                                                   \
    int dpt_mpi_rc_ = (call);                                                            \
    if (dpt_mpi_rc_ != 0) {                                                              \
      DPT_THROW(#call, " failed: ", ::dpt::detail::mpi_error_string(dpt_mpi_rc_));       \
    }                                                                                    \
  } while (0)

namespace dpt::detail {
// Defined in runtime.cpp so that this header does not pull in mpi.h.
std::string mpi_error_string(int code);
}  // namespace dpt::detail
