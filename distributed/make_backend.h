// make_backends: the two roles collectives play, filled to fit how this process was launched and where the model
// runs, and the one rule that says where the model runs. Also the distributed library's part of the config (ddp.*).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/config.h"
#include "core/runtime.h"
#include "distributed/backend.h"

namespace dpt::distributed {

// ddp.*: buckets, accumulation, unused parameters, buffers, compression, the backend, timeouts, shared memory.
std::vector<ConfigKey> config_keys();

// Where the model of the rank with `local_rank` runs, for runtime.device = "cpu", "cuda" or "auto" (cuda when
// this LibTorch sees a GPU): on a GPU, local_rank % visible GPUs. Every part that needs the device asks this.
at::Device model_device(const std::string& wanted, int local_rank);

// Control traffic (stop flags, non-finite votes, counters, metrics, RNG states, run id, bucket order) is small
// host tensors; model traffic (gradient buckets, parameters, buffers) lives on the model's device. Keeping them
// apart lets the gradient backend be NCCL, which takes CUDA tensors only.
struct Backends {
  std::shared_ptr<Backend> control;    // host tensors; MPI across ranks, local at world size 1
  std::shared_ptr<Backend> gradients;  // tensors on `device`; on CPU the same object as `control`
  at::Device device = at::kCPU;
};

struct BackendOptions {
  std::string device = "cpu";      // runtime.device: cpu, cuda or auto
  std::string backend = "auto";    // ddp.backend: auto, mpi or nccl
  double timeout_s = 300.0;        // ddp.timeout_s
  double shared_memory_mb = 16.0;  // ddp.shared_memory_mb (0: MPI_Allreduce)
  std::string allreduce = "auto";  // ddp.allreduce: auto | mpi | shm | hierarchical

  static BackendOptions from_config(const Config& config);
};

// "auto": NCCL for a CUDA model across ranks, MPI for a CPU one; a world of one needs no communication. An
// explicit backend that does not fit the device is an error.
Backends make_backends(const Runtime& runtime, const BackendOptions& options = {});

}  // namespace dpt::distributed
