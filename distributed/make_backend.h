// make_backend: the Backend that fits how this process was launched (MPI ranks, or a world of one).
#pragma once

#include <memory>

#include "core/runtime.h"
#include "distributed/backend.h"

namespace dpt::distributed {

std::unique_ptr<Backend> make_backend(const Runtime& runtime, double timeout_s = 300.0);

}  // namespace dpt::distributed
