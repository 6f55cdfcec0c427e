// MpiBackend: a FIFO of collectives run by one thread, so every rank issues them in the same order
// while the training thread goes on computing.
#include "distributed/mpi_backend.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/check.h"
#include "distributed/progress_board.h"
#include "distributed/shm_allreduce.h"

namespace dpt::distributed {
namespace {

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kBool: return MPI_C_BOOL;
    case at::kBFloat16:
    case at::kHalf: return MPI_UINT16_T;  // summed by the 16-bit ops below, never by MPI_SUM
    default:
      DPT_THROW("the MPI backend cannot reduce ", t.toString(),
                " tensors: use float32/float64/int32/int64/uint8/bfloat16/float16");
  }
}

// MPI has no bfloat16 (and Open MPI 4.1 no float16) sum: these user ops add two 16-bit values in float32 and
// round the result once, so each reduction step loses at most half a 16-bit ulp.
template <typename T>
void sum_16bit(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const T*>(in);
  auto* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = T(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

void check_host_contiguous(const at::Tensor& t, const char* op) {
  DPT_CHECK(!t.is_cuda(), "the MPI backend got a CUDA tensor for ", op,
            ": Debian's Open MPI is not CUDA-aware; use the NCCL backend for CUDA tensors");
  DPT_CHECK(t.is_contiguous(), "the MPI backend needs a contiguous tensor for ", op);
}

// MPI counts are int: large buffers go in pieces of at most 2^30 elements.
template <typename Fn>
void in_chunks(std::int64_t n, std::int64_t element_size, Fn&& fn) {
  constexpr std::int64_t chunk = std::int64_t{1} << 30;
  for (std::int64_t offset = 0; offset < n; offset += chunk) {
    fn(offset * element_size, static_cast<int>(std::min(chunk, n - offset)));
  }
}

}  // namespace

struct MpiBackend::Shared {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL;
  MPI_Op fp16_sum = MPI_OP_NULL;
  std::unique_ptr<ShmAllreduce> shm;  // null: the ranks span nodes, or shared memory is off or unavailable
  std::unique_ptr<ProgressBoard> board;  // this node's ranks; null: a world of one, or /dev/shm is unavailable

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<std::shared_ptr<MpiWork>, std::function<void(Shared&)>>> queue;
  bool stopping = false;
  bool exited = false;  // the communication thread has returned

  std::mutex poll_mutex;
  std::condition_variable poll_wake;
  int waiters = 0;  // callers blocked in wait(), guarded by poll_mutex

  void run_queue();
  void await_all_ranks();
};

class MpiBackend::MpiWork final : public Work {
 public:
  MpiWork(std::shared_ptr<Shared> shared, std::string what, std::uint64_t number, double timeout_s)
      : shared_(std::move(shared)), what_(std::move(what)), number_(number), timeout_s_(timeout_s) {}

  const std::string& what() const { return what_; }
  std::uint64_t number() const { return number_; }

  void wait() override {
    const Waiting waiting(*shared_);
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    if (!done_cv_.wait_until(lock, deadline, [&] { return done_; })) {
      const std::string why =
          shared_->board ? shared_->board->whereabouts(number_, what_) +
                               ". A rank that has not reached a collective has died, hangs or is still computing: "
                               "check its output"
                         : "another rank has died, hangs, or issued different collectives; check the other ranks' "
                           "output";
      DPT_THROW("MPI ", what_, " (collective #", number_, ") did not complete within ", timeout_s_, " s: ", why,
                " (raise ddp.timeout_s for very slow steps)");
    }
    if (!error_.empty()) DPT_THROW("MPI ", what_, " (collective #", number_, ") failed: ", error_);
  }

  bool is_done() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

  void finish(std::string error) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      error_ = std::move(error);
    }
    done_cv_.notify_all();
  }

 private:
  // Tells the communication thread that a caller is blocked on a collective, so it polls without pause.
  class Waiting {
   public:
    explicit Waiting(Shared& shared) : shared_(shared) {
      {
        const std::lock_guard<std::mutex> lock(shared_.poll_mutex);
        ++shared_.waiters;
      }
      shared_.poll_wake.notify_all();
    }
    ~Waiting() {
      const std::lock_guard<std::mutex> lock(shared_.poll_mutex);
      --shared_.waiters;
    }

   private:
    Shared& shared_;
  };

  std::shared_ptr<Shared> shared_;
  std::string what_;
  std::uint64_t number_;
  double timeout_s_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::string error_;
};

void MpiBackend::Shared::run_queue() {
  for (;;) {
    std::pair<std::shared_ptr<MpiWork>, std::function<void(Shared&)>> item;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;
      item = std::move(queue.front());
      queue.pop_front();
    }
    if (board) board->started(item.first->number(), item.first->what());
    std::string error;
    try {
      item.second(*this);
    } catch (const Error& e) {
      error = e.message();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (board) board->finished(item.first->number());
    item.first->finish(std::move(error));
  }
}

// Open MPI's blocking collectives busy-poll until every rank has arrived, and ranks reach a gradient bucket
// milliseconds apart: a communication thread spinning through that skew takes a core from the training threads
// (with as many ranks as cores, a good part of the compute). So for an overlapped all-reduce the thread first
// meets the other ranks in an MPI_Ibarrier polled with pauses that grow from kFirstPause to kLongestPause (each
// poll costs some 15 us of CPU: a late rank 400 ms away cost 16 % of a core at a steady 100 us), or without pause
// once a caller is blocked in wait() (the core is free then, and the last bucket is not delayed); then the
// blocking all-reduce runs, and its time is real work.
void MpiBackend::Shared::await_all_ranks() {
  constexpr auto kFirstPause = std::chrono::microseconds(50);
  constexpr auto kLongestPause = std::chrono::microseconds(1000);
  MPI_Request request;
  DPT_CHECK_MPI(MPI_Ibarrier(comm, &request));
  auto pause = kFirstPause;
  for (int done = 0;;) {
    DPT_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    {
      const std::lock_guard<std::mutex> lock(mutex);
      DPT_CHECK(!stopping, "the MPI backend was shut down while waiting for the other ranks");
    }
    std::unique_lock<std::mutex> lock(poll_mutex);
    if (waiters == 0) poll_wake.wait_for(lock, pause, [&] { return waiters > 0; });
    pause = std::min(2 * pause, kLongestPause);
  }
}

MpiBackend::MpiBackend(MPI_Comm comm, double timeout_s, std::size_t shared_memory_bytes)
    : timeout_s_(timeout_s), shared_(std::make_shared<Shared>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  DPT_CHECK(initialized, "the MPI backend needs MPI to be initialised: launch with mpirun or srun");
  DPT_CHECK_MPI(MPI_Comm_dup(comm, &shared_->comm));
  MPI_Comm_set_errhandler(shared_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(shared_->comm, &rank_);
  MPI_Comm_size(shared_->comm, &world_size_);
  DPT_CHECK_MPI(MPI_Op_create(&sum_16bit<c10::BFloat16>, 1, &shared_->bf16_sum));
  DPT_CHECK_MPI(MPI_Op_create(&sum_16bit<c10::Half>, 1, &shared_->fp16_sum));
  shared_->shm = ShmAllreduce::create(shared_->comm, shared_memory_bytes, &shared_memory_unavailable_);
  if (world_size_ > 1) {
    MPI_Comm node = MPI_COMM_NULL;
    DPT_CHECK_MPI(MPI_Comm_split_type(shared_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    shared_->board = ProgressBoard::create(shared_->comm, node);
    MPI_Comm_free(&node);
  }
  comm_thread_ = std::thread([shared = shared_] {
    shared->run_queue();
    {
      const std::lock_guard<std::mutex> lock(shared->mutex);
      shared->exited = true;
    }
    shared->wake.notify_all();
  });
}

MpiBackend::~MpiBackend() {
  // A collective still running at this point has a rank that never joined it (the job is ending with its
  // timeout error): after a grace period the thread is left to the process's exit rather than waited for.
  constexpr auto kShutdownGrace = std::chrono::seconds(2);
  bool exited = false;
  {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->stopping = true;
    shared_->wake.notify_all();
    exited = shared_->wake.wait_for(lock, kShutdownGrace, [&] { return shared_->exited; });
  }
  shared_->poll_wake.notify_all();
  if (!exited) {
    comm_thread_.detach();
    return;
  }
  comm_thread_.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    MPI_Op_free(&shared_->bf16_sum);
    MPI_Op_free(&shared_->fp16_sum);
    MPI_Comm_free(&shared_->comm);
  }
}

std::shared_ptr<Work> MpiBackend::submit(std::string what, std::function<void(Shared&)> op) {
  std::shared_ptr<MpiWork> work;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    work = std::make_shared<MpiWork>(shared_, std::move(what), ++submitted_, timeout_s_);
    shared_->queue.emplace_back(work, std::move(op));
  }
  shared_->wake.notify_all();
  return work;
}

bool MpiBackend::uses_shared_memory() const { return shared_->shm != nullptr; }

std::shared_ptr<Work> MpiBackend::allreduce(at::Tensor& tensor, ReduceOp op) { return allreduce(tensor, op, false); }

std::shared_ptr<Work> MpiBackend::allreduce_overlapped(at::Tensor& tensor, ReduceOp op) {
  return allreduce(tensor, op, world_size_ > 1);
}

std::shared_ptr<Work> MpiBackend::allreduce(at::Tensor& tensor, ReduceOp op, bool rendezvous) {
  check_host_contiguous(tensor, "allreduce");
  const MPI_Datatype type = mpi_type(tensor);
  const bool is_16bit = tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
  const bool is_bf16 = tensor.scalar_type() == at::kBFloat16;
  at::Tensor t = tensor;
  const int world = world_size_;
  return submit("allreduce of " + std::to_string(t.nbytes()) + " bytes",
                [t, type, is_16bit, is_bf16, op, world, rendezvous](Shared& shared) mutable {
                  if (shared.shm && ShmAllreduce::supports(t)) {
                    shared.shm->sum(t, [&] {
                      if (rendezvous) {
                        shared.await_all_ranks();
                      } else {
                        DPT_CHECK_MPI(MPI_Barrier(shared.comm));
                      }
                    });
                  } else {
                    if (rendezvous) shared.await_all_ranks();
                    const MPI_Op sum = !is_16bit ? MPI_SUM : is_bf16 ? shared.bf16_sum : shared.fp16_sum;
                    auto* base = static_cast<char*>(t.data_ptr());
                    in_chunks(t.numel(), t.element_size(), [&](std::int64_t byte_offset, int count) {
                      DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, base + byte_offset, count, type, sum, shared.comm));
                    });
                  }
                  if (op == ReduceOp::Avg) t.div_(world);
                });
}

std::shared_ptr<Work> MpiBackend::broadcast(at::Tensor& tensor, int root) {
  check_host_contiguous(tensor, "broadcast");
  DPT_CHECK(root >= 0 && root < world_size_, "broadcast root ", root, " is not a rank of this world of ",
            world_size_);
  at::Tensor t = tensor;
  return submit("broadcast of " + std::to_string(t.nbytes()) + " bytes from rank " + std::to_string(root),
                [t, root](Shared& shared) {
                  auto* base = static_cast<char*>(t.data_ptr());
                  in_chunks(static_cast<std::int64_t>(t.nbytes()), 1, [&](std::int64_t offset, int count) {
                    DPT_CHECK_MPI(MPI_Bcast(base + offset, count, MPI_BYTE, root, shared.comm));
                  });
                });
}

std::shared_ptr<Work> MpiBackend::allgather(const at::Tensor& input, at::Tensor& output) {
  check_host_contiguous(input, "allgather");
  check_host_contiguous(output, "allgather");
  DPT_CHECK(output.numel() == input.numel() * world_size_ && output.scalar_type() == input.scalar_type(),
            "allgather output must hold ", world_size_, " x ", input.numel(), " elements of ", input.toString());
  const std::int64_t bytes = static_cast<std::int64_t>(input.nbytes());
  DPT_CHECK(bytes <= INT_MAX, "allgather of ", bytes, " bytes per rank exceeds MPI's 2 GiB count limit");
  at::Tensor in = input;
  at::Tensor out = output;
  return submit("allgather of " + std::to_string(bytes) + " bytes per rank", [in, out, bytes](Shared& shared) {
    DPT_CHECK_MPI(MPI_Allgather(in.data_ptr(), static_cast<int>(bytes), MPI_BYTE, out.data_ptr(),
                                static_cast<int>(bytes), MPI_BYTE, shared.comm));
  });
}

std::shared_ptr<Work> MpiBackend::barrier() {
  return submit("barrier", [](Shared& shared) { DPT_CHECK_MPI(MPI_Barrier(shared.comm)); });
}

}  // namespace dpt::distributed
