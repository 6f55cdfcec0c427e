// make_backends: MPI for host tensors, NCCL (when built) or MPI for the model's, local for a world of one; the
// device rule; the ddp.* keys.
#include "distributed/make_backend.h"

#include <iostream>

#include <torch/cuda.h>

#include "core/check.h"
#include "distributed/local_backend.h"
#include "distributed/mpi_backend.h"
#include "distributed/reducer.h"
#ifdef DPTRAIN_HAS_NCCL
#include "distributed/nccl_backend.h"
#include "distributed/rendezvous.h"
#endif

namespace dpt::distributed {

std::vector<ConfigKey> config_keys() {
  using namespace config_key;
  return {
      number("ddp.bucket_cap_mb", 25.0, 1e-6, 1e6, "gradient bucket size in MiB (one all-reduce per bucket)"),
      number("ddp.first_bucket_mb", 1.0, 1e-6, 1e6, "size of the first bucket, small so communication starts early"),
      integer("ddp.accumulate_steps", 1, 1, 1e6,
              "split each loader batch (train.batch_size samples per rank) into this many micro-batches to save "
              "memory; one all-reduce per step (train.accumulate_batches gathers several batches instead)"),
      flag("ddp.find_unused_parameters", false,
           "parameters without a gradient in a step count as zeros (off: such a step is an error naming them)"),
      integer("ddp.broadcast_buffers_every", 1, 0, 9.2e18,
              "copy rank 0's buffers (BatchNorm statistics) to every rank every N steps, before forward (0: never)"),
      integer("ddp.zero", 0, 0, 1,
              "1: ZeRO-1, each rank keeps 1/N of the optimizer state: gradients reduce-scattered, each rank steps its "
              "shard of every bucket, parameters all-gathered after the step (checkpoints hold the state whole)"),
      text("ddp.compression", "none", "all-reduce gradients as 16-bit values, summed in float32", compression_names()),
      text("ddp.backend", "auto", "gradient backend: auto (nccl for a CUDA model, mpi for a CPU one), mpi or nccl",
           {"auto", "mpi", "nccl"}),
      number("ddp.timeout_s", 300.0, 1e-3, 1e9, "a collective that takes longer ends the job with an error"),
      text("ddp.allreduce", "auto",
           "MPI all-reduce path: auto (shm on one node, hierarchical across nodes with several ranks on a node, "
           "else mpi), mpi (one flat MPI_Allreduce), shm (one node only) or hierarchical (shared memory within "
           "each node, MPI between one leader per node)",
           allreduce_path_names()),
      number("ddp.shared_memory_mb", 16.0, 0.0, 1e6,
             "MPI ranks on one node all-reduce through two buffers of this many MiB each in /dev/shm (0: MPI_Allreduce)"),
  };
}

at::Device model_device(const std::string& wanted, int local_rank) {
  const bool gpu = torch::cuda::is_available();
  if (wanted == "cpu" || (wanted == "auto" && !gpu)) return at::kCPU;
  DPT_CHECK(wanted == "cuda" || wanted == "auto", "runtime.device = \"", wanted, "\": use cpu, cuda or auto");
  DPT_CHECK(gpu, "runtime.device = \"cuda\" but this LibTorch has no usable CUDA device: use runtime.device = \"cpu\" ",
            "or build against a CUDA LibTorch (CMAKE_PREFIX_PATH)");
  const auto count = static_cast<int>(torch::cuda::device_count());
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

namespace {

#ifdef DPTRAIN_HAS_NCCL
// How long a rank whose NCCL collective timed out waits for the other ranks to say where they are.
constexpr double kStallReportS = 10.0;
#endif

std::shared_ptr<MpiBackend> make_mpi(const Runtime& runtime, double timeout_s, double shared_memory_mb,
                                     AllreducePath path) {
  auto backend = std::make_shared<MpiBackend>(MPI_COMM_WORLD, timeout_s,
                                              static_cast<std::size_t>(shared_memory_mb * 1024 * 1024), path);
  if (runtime.is_main() && !backend->shared_memory_unavailable().empty()) {
    std::cerr << "dptrain: warning: all-reduces go through MPI, slower than through shared memory: "
              << backend->shared_memory_unavailable() << std::endl;
  }
  return backend;
}

}  // namespace

BackendOptions BackendOptions::from_config(const Config& config) {
  BackendOptions o;
  o.device = config.get_string("runtime.device");
  o.backend = config.get_string("ddp.backend");
  o.timeout_s = config.get_float("ddp.timeout_s");
  o.shared_memory_mb = config.get_float("ddp.shared_memory_mb");
  o.allreduce = config.get_string("ddp.allreduce");
  DPT_CHECK(o.shared_memory_mb > 0 || o.allreduce != "shm", "ddp.allreduce = \"shm\" all-reduces through shared ",
            "memory, but ddp.shared_memory_mb = 0 turns it off: give it some MiB (default 16), or use auto or mpi");
  return o;
}

Backends make_backends(const Runtime& runtime, const BackendOptions& options) {
  Backends out;
  out.device = model_device(options.device, runtime.local_rank());
  const std::string& wanted = options.backend;
  const bool cuda = out.device.is_cuda();
  DPT_CHECK(wanted != "nccl" || cuda, "ddp.backend = \"nccl\" needs the model on a GPU: set runtime.device = ",
            "\"cuda\" (or auto on a GPU machine), or use ddp.backend = \"mpi\"");
  DPT_CHECK(wanted != "mpi" || !cuda, "ddp.backend = \"mpi\" takes host tensors, but the model is on ", out.device.str(),
            ": this Open MPI is not CUDA-aware; use ddp.backend = \"nccl\" (or auto)");
  if (!runtime.uses_mpi() || runtime.world_size() == 1) {
    out.control = out.gradients = std::make_shared<LocalBackend>();
    return out;
  }
  const double timeout_s = options.timeout_s;
  if (!cuda) {
    out.control = out.gradients =
        make_mpi(runtime, timeout_s, options.shared_memory_mb, allreduce_path_from_name(options.allreduce));
    return out;
  }
  // Control messages are a few bytes each: MPI_Allreduce is what fits them, no shared-memory buffers.
  out.control = make_mpi(runtime, timeout_s, 0.0, AllreducePath::Mpi);
#ifdef DPTRAIN_HAS_NCCL
  // On rank 0 the store hosts the server the others read the NCCL id from. It lives as long as the backend, which
  // reports a stalled collective through it: the other ranks' reports follow their own timeouts within seconds, so
  // that wait is short (kStallReportS), not a second ddp.timeout_s.
  const std::shared_ptr<Store> store = rendezvous_store(runtime, timeout_s);
  auto nccl = std::make_shared<NcclBackend>(*store, runtime.rank(), runtime.world_size(), out.device.index(),
                                            timeout_s);
  store->set_timeout_s(kStallReportS);
  nccl->report_stalls_through(store);
  out.gradients = nccl;
  return out;
#else
  DPT_THROW("a model on ", out.device.str(), " with ", runtime.world_size(), " ranks needs the NCCL backend, but ",
            "this dptrain was built without NCCL: rebuild with CUDA and NCCL found (-DDPTRAIN_WITH_NCCL=ON, ",
            "NCCL_ROOT) or use runtime.device = \"cpu\"");
#endif
}

}  // namespace dpt::distributed
