// make_backend: NCCL for CUDA tensors across MPI ranks, MPI for CPU tensors, the local backend for a world of one.
#include "distributed/make_backend.h"

#include <iostream>

#include "core/check.h"
#include "distributed/local_backend.h"
#include "distributed/mpi_backend.h"
#ifdef DPTRAIN_HAS_NCCL
#include "distributed/nccl_backend.h"
#include "distributed/rendezvous.h"
#endif

namespace dpt::distributed {

std::unique_ptr<Backend> make_backend(const Runtime& runtime, const std::string& device, double timeout_s,
                                      double shared_memory_mb) {
  if (!runtime.uses_mpi() || runtime.world_size() == 1) return std::make_unique<LocalBackend>();
  // The same rule as the trainer's device choice, so that backend and tensors agree.
  const bool cuda = device == "cuda" || (device == "auto" && at::hasCUDA());
  if (!cuda) {
    auto backend = std::make_unique<MpiBackend>(MPI_COMM_WORLD, timeout_s,
                                                static_cast<std::size_t>(shared_memory_mb * 1024 * 1024));
    if (runtime.is_main() && !backend->shared_memory_unavailable().empty()) {
      std::cerr << "dptrain: warning: all-reduces go through MPI, slower than through shared memory: "
                << backend->shared_memory_unavailable() << std::endl;
    }
    return backend;
  }
#ifdef DPTRAIN_HAS_NCCL
  const auto store = rendezvous_store(runtime, timeout_s);
  return std::make_unique<NcclBackend>(*store, runtime.rank(), runtime.world_size(), runtime.local_rank(), timeout_s);
#else
  DPT_THROW("runtime.device = \"", device, "\" with ", runtime.world_size(), " ranks needs the NCCL backend, but this ",
            "dptrain was built without NCCL: rebuild with CUDA and NCCL found (-DDPTRAIN_WITH_NCCL=ON, NCCL_ROOT) ",
            "or use runtime.device = \"cpu\"");
#endif
}

}  // namespace dpt::distributed
