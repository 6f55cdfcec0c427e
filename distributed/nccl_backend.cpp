// NcclBackend: each collective waits (on the GPU, through an event) for the work already queued on the caller's
// current stream, such as the kernels that produced a gradient bucket, runs on the backend's own stream, and
// records an event that wait() orders the caller's stream after and polls with a timeout; nothing in a step
// synchronises the whole device. A timeout aborts the communicator and names the ranks that did not arrive.
#include "distributed/nccl_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include <cuda_runtime.h>
#include <nccl.h>

#include "core/check.h"
#include "distributed/nccl_version.h"
#include "kernels/cuda_stream.h"

namespace dpt::distributed {
namespace {

// The stream the caller's LibTorch ops run on (kernels::current_cuda_stream keeps LibTorch's CUDA headers out of
// this file): a collective starts after what was queued there, and the caller's later work waits for it.
cudaStream_t caller_stream(int device) { return static_cast<cudaStream_t>(kernels::current_cuda_stream(device)); }

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
#if DPTRAIN_NCCL_HAS_BF16
    case at::kBFloat16: return ncclBfloat16;
#endif
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default:
      DPT_THROW("the NCCL backend cannot reduce ", t.toString(),
                " tensors: use float32/float64/float16/bfloat16/int32/int64/uint8/int8");
  }
}

}  // namespace

struct NcclBackend::Impl {
  int rank = 0;
  int world_size = 1;
  int device = 0;
  double timeout_s = 300.0;
  std::string id_key;  // this communicator's unique-id key in the store; names its stall reports too
  ncclComm_t comm = nullptr;
  bool aborted = false;  // after a timeout or an asynchronous error: the communicator is gone
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;     // recorded on the caller's stream before each collective
  int* barrier_scratch = nullptr;  // one device int that barrier() all-reduces
  std::uint64_t submitted = 0;
  std::shared_ptr<Store> peers;  // where a timed-out rank tells the others, and learns who never came

  // Abandons every collective in flight (ncclCommAbort) and throws `what` with the peers' report.
  [[noreturn]] void abort_with(const std::string& what, std::uint64_t collective);
  std::string peer_report(const std::string& what, std::uint64_t collective) const;

  void check_tensor(const at::Tensor& t, const char* op) const {
    DPT_CHECK(t.is_cuda(), "the NCCL backend got a CPU tensor for ", op,
              ": move it to the GPU or use the MPI backend (runtime.device = \"cpu\")");
    DPT_CHECK(t.device().index() == device, "the NCCL backend of this rank uses cuda:", device, " but ", op,
              " got a tensor on ", t.device().str(), ": create tensors on the backend's device");
    DPT_CHECK(t.is_contiguous(), "the NCCL backend needs a contiguous tensor for ", op);
  }

  // Before a collective is queued: this thread talks to our device, and our stream waits for the work already
  // queued on the default stream (the producers of the tensor).
  void begin() const {
    DPT_CHECK(!aborted, "the NCCL communicator was aborted after an earlier collective failed or timed out: the ",
              "job cannot go on; see the first error");
    DPT_CHECK_CUDA(cudaSetDevice(device));
    // A re-recorded event is waited on as recorded at the time of the wait call: one event serves every collective.
    DPT_CHECK_CUDA(cudaEventRecord(ready, caller_stream(device)));
    DPT_CHECK_CUDA(cudaStreamWaitEvent(stream, ready, 0));
  }

  // NCCL's op for `op` (Avg from NCCL 2.10 on).
  ncclRedOp_t reduction(ReduceOp op) const;

  // After a collective is queued: the Work that completes with it.
  std::shared_ptr<Work> finish(const std::string& what);
};

class NcclBackend::NcclWork final : public Work {
 public:
  NcclWork(std::string what, Impl& impl) : what_(std::move(what)), impl_(impl), collective_(impl.submitted) {
    DPT_CHECK_CUDA(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    DPT_CHECK_CUDA(cudaEventRecord(done_, impl_.stream));
  }
  ~NcclWork() override { cudaEventDestroy(done_); }

  // The caller's later work sees the result; the host returns once the collective has finished, or aborts the
  // communicator and throws after the timeout (or on an asynchronous NCCL error such as a lost peer).
  void wait() override {
    DPT_CHECK_CUDA(cudaSetDevice(impl_.device));
    DPT_CHECK_CUDA(cudaStreamWaitEvent(caller_stream(impl_.device), done_, 0));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(impl_.timeout_s);
    auto pause = std::chrono::microseconds(1);
    while (!is_done()) {
      ncclResult_t async_error = ncclSuccess;
      DPT_CHECK_NCCL(ncclCommGetAsyncError(impl_.comm, &async_error));
      if (async_error != ncclSuccess) {
        impl_.abort_with("NCCL " + what_ + " failed: " + ncclGetErrorString(async_error), collective_);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::ostringstream what;
        what << "NCCL " << what_ << " did not complete within " << impl_.timeout_s << " s";
        impl_.abort_with(what.str(), collective_);
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

  bool is_done() override {
    const cudaError_t state = cudaEventQuery(done_);
    if (state == cudaErrorNotReady) return false;
    DPT_CHECK_CUDA(state);
    return true;
  }

 private:
  std::string what_;
  Impl& impl_;  // a Work must not outlive its backend
  std::uint64_t collective_;
  cudaEvent_t done_ = nullptr;
};

void NcclBackend::Impl::abort_with(const std::string& what, std::uint64_t collective) {
  if (!aborted) {
    aborted = true;
    ncclCommAbort(comm);  // returns once the kernels in flight are gone; the communicator is freed with them
    comm = nullptr;
  }
  DPT_THROW(what, "; the communicator is aborted. ", peer_report(what, collective),
            " (raise ddp.timeout_s for very slow steps)");
}

// Each rank that times out says so in the store; the ranks that never say so within the store's timeout did not
// reach a collective of their own (they died, hang outside NCCL, or compute on), and the ones that did name what
// they were waiting for (different collectives mean the ranks' code diverged).
std::string NcclBackend::Impl::peer_report(const std::string& what, std::uint64_t collective) const {
  if (!peers) return "Another rank has died, hangs, or issued different collectives; check the other ranks' output";
  const std::string prefix = id_key + "/stalled/rank";
  std::vector<std::string> keys;
  try {
    peers->set(prefix + std::to_string(rank), what + " (collective #" + std::to_string(collective) + ")");
    for (int r = 0; r < world_size; ++r) {
      if (r != rank) keys.push_back(prefix + std::to_string(r));
    }
    peers->wait(keys);
  } catch (const Error& e) {
    return "Ranks that did not report a stalled collective of their own within " + std::to_string(peers->timeout_s()) +
           " s (missing keys " + prefix + "<rank>): " + e.message();
  }
  std::string report = "Every rank is stalled in NCCL:";
  for (int r = 0; r < world_size; ++r) {
    if (r == rank) continue;
    try {
      report += " rank " + std::to_string(r) + ": " + peers->get(prefix + std::to_string(r)) + ";";
    } catch (const Error& e) {
      report += " rank " + std::to_string(r) + ": " + e.message() + ";";
    }
  }
  return report + " different collectives mean the ranks issued them in different orders";
}

NcclBackend::NcclBackend(Store& store, int rank, int world_size, int device, double timeout_s)
    : rank_(rank), world_size_(world_size), impl_(std::make_unique<Impl>()) {
  impl_->rank = rank;
  impl_->world_size = world_size;
  DPT_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "NCCL backend: rank ", rank,
            " is not in a world of ", world_size);
  int devices = 0;
  DPT_CHECK_CUDA(cudaGetDeviceCount(&devices));
  DPT_CHECK(devices > 0, "the NCCL backend needs a CUDA device, but none is visible: check CUDA_VISIBLE_DEVICES ",
            "or use runtime.device = \"cpu\"");
  impl_->device = device % devices;
  impl_->timeout_s = timeout_s;
  DPT_CHECK_CUDA(cudaSetDevice(impl_->device));

  // Every rank builds its backends in the same order, so the n-th backend of each rank reads the n-th id: a
  // store that outlives one backend (a file store directory) never hands the next one a used id.
  static std::atomic<int> backends_built{0};
  const std::string key = "nccl/unique_id/" + std::to_string(backends_built++);
  impl_->id_key = key;
  ncclUniqueId id;
  if (rank == 0) {
    DPT_CHECK_NCCL(ncclGetUniqueId(&id));
    store.set(key, std::string(reinterpret_cast<const char*>(&id), sizeof(id)));
  } else {
    const std::string bytes = store.get(key);
    DPT_CHECK(bytes.size() == sizeof(id), "NCCL backend: ", store.name(), " returned ", bytes.size(), " bytes for '",
              key, "', expected ", sizeof(id), ": a stale or foreign value; use a fresh store");
    std::memcpy(&id, bytes.data(), sizeof(id));
  }

  DPT_CHECK_CUDA(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  DPT_CHECK_CUDA(cudaEventCreateWithFlags(&impl_->ready, cudaEventDisableTiming));
  DPT_CHECK_CUDA(cudaMalloc(&impl_->barrier_scratch, sizeof(int)));
  DPT_CHECK_NCCL(ncclCommInitRank(&impl_->comm, world_size, id, rank));
}

NcclBackend::~NcclBackend() {
  cudaSetDevice(impl_->device);
  if (impl_->stream && !impl_->aborted) cudaStreamSynchronize(impl_->stream);
  if (impl_->comm) ncclCommDestroy(impl_->comm);
  if (impl_->ready) cudaEventDestroy(impl_->ready);
  if (impl_->barrier_scratch) cudaFree(impl_->barrier_scratch);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

int NcclBackend::device() const { return impl_->device; }

void NcclBackend::report_stalls_through(std::shared_ptr<Store> peers) { impl_->peers = std::move(peers); }

std::shared_ptr<Work> NcclBackend::Impl::finish(const std::string& what) {
  return std::make_shared<NcclWork>(what + " (collective #" + std::to_string(++submitted) + ")", *this);
}

ncclRedOp_t NcclBackend::Impl::reduction(ReduceOp op) const {
#if DPTRAIN_NCCL_HAS_AVG
  return op == ReduceOp::Avg ? ncclAvg : ncclSum;
#else
  DPT_CHECK(op == ReduceOp::Sum, "an averaging reduction needs NCCL 2.10 or later (this one is ", NCCL_MAJOR, ".",
            NCCL_MINOR, "): sum and divide, or build against a newer NCCL");
  return ncclSum;
#endif
}

std::shared_ptr<Work> NcclBackend::allreduce(at::Tensor& tensor, ReduceOp op) {
  impl_->check_tensor(tensor, "allreduce");
  impl_->begin();
  DPT_CHECK_NCCL(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                               nccl_type(tensor), impl_->reduction(op), impl_->comm, impl_->stream));
  return impl_->finish("allreduce of " + std::to_string(tensor.nbytes()) + " bytes");
}

std::shared_ptr<Work> NcclBackend::reduce_scatter(at::Tensor& flat, ReduceOp op) {
  impl_->check_tensor(flat, "reduce_scatter");
  const std::int64_t shard = shard_numel(flat, world_size_, "reduce_scatter");
  impl_->begin();
  auto* base = static_cast<char*>(flat.data_ptr());
  DPT_CHECK_NCCL(ncclReduceScatter(base, base + rank_ * shard * flat.element_size(), static_cast<std::size_t>(shard),
                                   nccl_type(flat), impl_->reduction(op), impl_->comm, impl_->stream));
  return impl_->finish("reduce-scatter of " + std::to_string(flat.nbytes()) + " bytes");
}

std::shared_ptr<Work> NcclBackend::all_gather(at::Tensor& flat) {
  impl_->check_tensor(flat, "all_gather");
  const auto bytes = static_cast<std::size_t>(shard_numel(flat, world_size_, "all_gather") * flat.element_size());
  impl_->begin();
  auto* base = static_cast<char*>(flat.data_ptr());
  DPT_CHECK_NCCL(ncclAllGather(base + rank_ * bytes, base, bytes, ncclUint8, impl_->comm, impl_->stream));
  return impl_->finish("all-gather of " + std::to_string(flat.nbytes()) + " bytes");
}

std::shared_ptr<Work> NcclBackend::broadcast(at::Tensor& tensor, int root) {
  impl_->check_tensor(tensor, "broadcast");
  DPT_CHECK(root >= 0 && root < world_size_, "broadcast root ", root, " is not a rank of this world of ",
            world_size_);
  impl_->begin();
  DPT_CHECK_NCCL(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.nbytes()),
                               ncclUint8, root, impl_->comm, impl_->stream));
  return impl_->finish("broadcast of " + std::to_string(tensor.nbytes()) + " bytes from rank " +
                       std::to_string(root));
}

std::shared_ptr<Work> NcclBackend::allgather(const at::Tensor& input, at::Tensor& output) {
  impl_->check_tensor(input, "allgather");
  impl_->check_tensor(output, "allgather");
  DPT_CHECK(output.numel() == input.numel() * world_size_ && output.scalar_type() == input.scalar_type(),
            "allgather output must hold ", world_size_, " x ", input.numel(), " elements of ", input.toString());
  impl_->begin();
  DPT_CHECK_NCCL(ncclAllGather(input.data_ptr(), output.data_ptr(), static_cast<std::size_t>(input.nbytes()),
                               ncclUint8, impl_->comm, impl_->stream));
  return impl_->finish("allgather of " + std::to_string(input.nbytes()) + " bytes per rank");
}

std::shared_ptr<Work> NcclBackend::barrier() {
  impl_->begin();
  DPT_CHECK_NCCL(ncclAllReduce(impl_->barrier_scratch, impl_->barrier_scratch, 1, ncclInt32, ncclSum, impl_->comm,
                               impl_->stream));
  return impl_->finish("barrier");
}

}  // namespace dpt::distributed
