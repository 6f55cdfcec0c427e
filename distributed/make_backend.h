// make_backend: the Backend that fits how this process was launched (MPI ranks, or a world of one) and where
// the model runs (CPU tensors: MPI; CUDA tensors: NCCL when this build has it).
#pragma once

#include <memory>
#include <string>

#include "core/runtime.h"
#include "distributed/backend.h"

namespace dpt::distributed {

// `device` is runtime.device: "cpu", "cuda" or "auto" (cuda when LibTorch sees a GPU), as the trainer reads it.
// `shared_memory_mb`: the MPI backend's shared-memory all-reduce buffers (ddp.shared_memory_mb; 0: MPI_Allreduce).
std::unique_ptr<Backend> make_backend(const Runtime& runtime, const std::string& device = "cpu",
                                      double timeout_s = 300.0, double shared_memory_mb = 16.0);

}  // namespace dpt::distributed
