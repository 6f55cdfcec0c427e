// make_backend: MPI when the runtime started MPI, the local backend otherwise.
#include "distributed/make_backend.h"

#include "distributed/local_backend.h"
#include "distributed/mpi_backend.h"

namespace dpt::distributed {

std::unique_ptr<Backend> make_backend(const Runtime& runtime, double timeout_s) {
  if (runtime.uses_mpi() && runtime.world_size() > 1) return std::make_unique<MpiBackend>(MPI_COMM_WORLD, timeout_s);
  return std::make_unique<LocalBackend>();
}

}  // namespace dpt::distributed
