// MpiBackend: a FIFO of collectives run by one thread, so every rank issues them in the same order
// while the training thread goes on computing.
#include "distributed/mpi_backend.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>

#include "core/check.h"
#include "core/error.h"
#include "distributed/host_address.h"
#include "distributed/peer_probe.h"
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

// How long a timed-out rank waits for the ranks on other nodes to say where they are.
constexpr double kProbeTimeoutS = 2.0;

// "0-1", "0, 2, 5", "3": the ranks of a list, runs joined.
std::string rank_list(const std::vector<int>& ranks) {
  std::string text;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    text += (text.empty() ? "" : ", ") + std::to_string(ranks[i]) +
            (j > i ? (j == i + 1 ? ", " : "-") + std::to_string(ranks[j]) : "");
    i = j;
  }
  return text;
}

}  // namespace

const std::vector<std::string>& allreduce_path_names() {
  static const std::vector<std::string> names = {"auto", "mpi", "shm", "hierarchical"};
  return names;
}

AllreducePath allreduce_path_from_name(const std::string& name) {
  const auto& names = allreduce_path_names();
  const auto found = std::find(names.begin(), names.end(), name);
  DPT_CHECK(found != names.end(), "ddp.allreduce = \"", name, "\": use auto, mpi, shm or hierarchical");
  return static_cast<AllreducePath>(found - names.begin());
}

std::string name_of(AllreducePath path) { return allreduce_path_names().at(static_cast<std::size_t>(path)); }

struct MpiBackend::Shared {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL;
  MPI_Op fp16_sum = MPI_OP_NULL;
  AllreducePath path = AllreducePath::Mpi;
  // With the Shm path over `comm`, with the Hierarchical one over `node`; null: shared memory is off or
  // unavailable, or this rank is alone on its node.
  std::unique_ptr<ShmAllreduce> shm;
  std::unique_ptr<ProgressBoard> board;  // this node's ranks; null: a world of one, or /dev/shm is unavailable
  std::unique_ptr<PeerProbe> probe;      // the ranks span nodes: how a timeout learns of the others
  MPI_Comm node = MPI_COMM_NULL;         // the ranks of this rank's node
  MPI_Comm leaders = MPI_COMM_NULL;      // the first rank of every node; MPI_COMM_NULL on the others
  int node_size = 1;
  std::vector<int> node_of;  // rank -> node index (nodes numbered by their first rank)

  // What the communication thread runs, for the peer probe's answers.
  std::mutex progress_mutex;
  CollectiveProgress progress;
  std::chrono::steady_clock::time_point progress_since = std::chrono::steady_clock::now();

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<std::shared_ptr<MpiWork>, std::function<void(Shared&)>>> queue;
  bool stopping = false;
  bool exited = false;  // the communication thread has returned

  std::mutex poll_mutex;
  std::condition_variable poll_wake;
  int waiters = 0;  // callers blocked in wait(), guarded by poll_mutex

  void run_queue();
  // Returns once every rank of `among` has called it, polling an MPI_Ibarrier without spinning a core.
  void await_all_ranks(MPI_Comm among);
  void post_progress(std::uint64_t number, const std::string& what, bool finished);
  std::string progress_line();
  // Sums a host tensor over the ranks of `among` with MPI_Allreduce (16-bit types through our own ops).
  void mpi_sum(const at::Tensor& t, MPI_Comm among);
  void sum(at::Tensor& t, bool rendezvous);
  // Backend::reduce_scatter and all_gather over `comm` (the shared-memory path when sums take it).
  void reduce_scatter(at::Tensor& t, bool rendezvous);
  void all_gather(at::Tensor& t);
  // Whether collectives over every rank of `comm` go through shared memory for `t`.
  bool through_shm(const at::Tensor& t) const {
    return path != AllreducePath::Hierarchical && shm && ShmAllreduce::supports(t);
  }
  // The MPI op that sums `t`'s dtype.
  MPI_Op sum_op(const at::Tensor& t) const {
    return t.scalar_type() == at::kBFloat16 ? bf16_sum : t.scalar_type() == at::kHalf ? fp16_sum : MPI_SUM;
  }
  // The ranks on other nodes: where each is, or that it cannot be reached, grouped by host.
  std::string elsewhere(std::uint64_t number, const std::string& what);
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
      std::string why = shared_->board ? shared_->board->whereabouts(number_, what_, shared_->probe != nullptr) : "";
      const std::string others = shared_->probe ? shared_->elsewhere(number_, what_) : "";
      why += (why.empty() || others.empty() ? "" : "; ") + others;
      why = why.empty() ? "another rank has died, hangs, or issued different collectives; check the other ranks' output"
                        : why + ". A rank that has not reached a collective has died, hangs or is still computing: "
                                "check its output";
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
    post_progress(item.first->number(), item.first->what(), false);
    std::string error;
    try {
      item.second(*this);
    } catch (const Error& e) {
      error = e.message();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (board) board->finished(item.first->number());
    post_progress(item.first->number(), item.first->what(), true);
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
void MpiBackend::Shared::await_all_ranks(MPI_Comm among) {
  constexpr auto kFirstPause = std::chrono::microseconds(50);
  constexpr auto kLongestPause = std::chrono::microseconds(1000);
  MPI_Request request;
  DPT_CHECK_MPI(MPI_Ibarrier(among, &request));
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

MpiBackend::MpiBackend(MPI_Comm comm, double timeout_s, std::size_t shared_memory_bytes, AllreducePath path,
                       MPI_Comm node)
    : timeout_s_(timeout_s), shared_(std::make_shared<Shared>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  DPT_CHECK(initialized, "the MPI backend needs MPI to be initialised: launch with mpirun or srun");
  Shared& s = *shared_;
  DPT_CHECK_MPI(MPI_Comm_dup(comm, &s.comm));
  MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(s.comm, &rank_);
  MPI_Comm_size(s.comm, &world_size_);
  DPT_CHECK_MPI(MPI_Op_create(&sum_16bit<c10::BFloat16>, 1, &s.bf16_sum));
  DPT_CHECK_MPI(MPI_Op_create(&sum_16bit<c10::Half>, 1, &s.fp16_sum));

  // Placement: the node of every rank, and one communicator per node plus one of the nodes' first ranks.
  MPI_Comm machine = MPI_COMM_NULL;  // the ranks that really share memory with this one
  DPT_CHECK_MPI(MPI_Comm_split_type(s.comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &machine));
  int machine_size = 1;
  MPI_Comm_size(machine, &machine_size);
  if (node == MPI_COMM_NULL) {
    s.node = machine;
  } else {
    MPI_Comm_free(&machine);
    DPT_CHECK_MPI(MPI_Comm_dup(node, &s.node));
  }
  int node_rank = 0;
  MPI_Comm_rank(s.node, &node_rank);
  MPI_Comm_size(s.node, &s.node_size);
  int first = rank_;
  DPT_CHECK_MPI(MPI_Bcast(&first, 1, MPI_INT, 0, s.node));
  std::vector<int> firsts(static_cast<std::size_t>(world_size_));
  DPT_CHECK_MPI(MPI_Allgather(&first, 1, MPI_INT, firsts.data(), 1, MPI_INT, s.comm));
  int largest_node = s.node_size;
  DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &largest_node, 1, MPI_INT, MPI_MAX, s.comm));
  std::vector<int> leaders_of(firsts);
  std::sort(leaders_of.begin(), leaders_of.end());
  leaders_of.erase(std::unique(leaders_of.begin(), leaders_of.end()), leaders_of.end());
  for (const int f : firsts) {
    s.node_of.push_back(static_cast<int>(std::lower_bound(leaders_of.begin(), leaders_of.end(), f) -
                                         leaders_of.begin()));
  }
  const int nodes = static_cast<int>(leaders_of.size());
  DPT_CHECK_MPI(MPI_Comm_split(s.comm, node_rank == 0 ? 0 : MPI_UNDEFINED, rank_, &s.leaders));

  DPT_CHECK(path != AllreducePath::Shm || nodes == 1, "ddp.allreduce = \"shm\" needs every rank on one node, but ",
            "the ", world_size_, " ranks run on ", nodes, " nodes: use auto, hierarchical or mpi");
  if (path == AllreducePath::Auto) {
    path = nodes == 1 ? AllreducePath::Shm : largest_node > 1 ? AllreducePath::Hierarchical : AllreducePath::Mpi;
  }
  s.path = path;
  if (path == AllreducePath::Shm) {
    s.shm = ShmAllreduce::create(s.comm, shared_memory_bytes, &shared_memory_unavailable_);
  } else if (path == AllreducePath::Hierarchical) {
    s.shm = ShmAllreduce::create(s.node, shared_memory_bytes, &shared_memory_unavailable_);
  }
  if (world_size_ > 1) s.board = ProgressBoard::create(s.comm, s.node);
  if (nodes > 1) {
    // Ranks that all share this machine (nodes made by the caller) answer on the loopback.
    const bool one_machine = machine_size == world_size_;
    s.probe = std::make_unique<PeerProbe>(
        s.comm, [one_machine] { return one_machine ? std::string("127.0.0.1") : reachable_ipv4_address(); },
        [shared = shared_.get()] { return shared->progress_line(); });
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
    if (shared_->leaders != MPI_COMM_NULL) MPI_Comm_free(&shared_->leaders);
    MPI_Comm_free(&shared_->node);
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

std::string MpiBackend::describe() const {
  if (world_size_ == 1) return name();
  const std::string how = shared_->path == AllreducePath::Shm && !shared_->shm ? "mpi" : name_of(shared_->path);
  return name() + " (" + how + " all-reduce; " + placement() + ")";
}

AllreducePath MpiBackend::allreduce_path() const { return shared_->path; }

int MpiBackend::nodes() const { return *std::max_element(shared_->node_of.begin(), shared_->node_of.end()) + 1; }

std::string MpiBackend::placement() const {
  std::vector<std::vector<int>> ranks(static_cast<std::size_t>(nodes()));
  for (int r = 0; r < world_size_; ++r) ranks[static_cast<std::size_t>(shared_->node_of[static_cast<std::size_t>(r)])].push_back(r);
  std::string text = std::to_string(world_size_) + " ranks on " + std::to_string(ranks.size()) + " node" +
                     (ranks.size() == 1 ? "" : "s");
  if (!shared_->probe) return text;
  for (std::size_t n = 0; n < ranks.size(); ++n) {
    text += (n == 0 ? " (" : "; ") + shared_->probe->host(ranks[n].front()) + ": ranks " + rank_list(ranks[n]);
  }
  return text + ")";
}

std::shared_ptr<Work> MpiBackend::allreduce(at::Tensor& tensor, ReduceOp op) { return allreduce(tensor, op, false); }

std::shared_ptr<Work> MpiBackend::allreduce_overlapped(at::Tensor& tensor, ReduceOp op) {
  return allreduce(tensor, op, world_size_ > 1);
}

std::shared_ptr<Work> MpiBackend::allreduce(at::Tensor& tensor, ReduceOp op, bool rendezvous) {
  check_host_contiguous(tensor, "allreduce");
  mpi_type(tensor);
  at::Tensor t = tensor;
  const int world = world_size_;
  return submit("allreduce of " + std::to_string(t.nbytes()) + " bytes",
                [t, op, world, rendezvous](Shared& shared) mutable {
                  shared.sum(t, rendezvous);
                  if (op == ReduceOp::Avg) t.div_(world);
                });
}

void MpiBackend::Shared::mpi_sum(const at::Tensor& t, MPI_Comm among) {
  const MPI_Op op = sum_op(t);
  const MPI_Datatype type = mpi_type(t);
  auto* base = static_cast<char*>(t.data_ptr());
  in_chunks(t.numel(), t.element_size(), [&](std::int64_t byte_offset, int count) {
    DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, base + byte_offset, count, type, op, among));
  });
}

// Hierarchical: the node's sum in shared memory (every rank of the node holds it), the nodes' sum between their
// first ranks over MPI, then the first rank's result to the others of its node through shared memory. Each
// stage meets its ranks first (polled, when the caller overlaps), so that a rank waiting on another node's
// traffic does not spin a core that its training thread needs.
void MpiBackend::Shared::sum(at::Tensor& t, bool rendezvous) {
  const auto meet = [&](MPI_Comm among) {
    return [this, among, rendezvous] {
      if (rendezvous) {
        await_all_ranks(among);
      } else {
        DPT_CHECK_MPI(MPI_Barrier(among));
      }
    };
  };
  if (path != AllreducePath::Hierarchical) {
    if (through_shm(t)) {
      shm->sum(t, meet(comm));
      return;
    }
    if (rendezvous) await_all_ranks(comm);
    mpi_sum(t, comm);
    return;
  }
  if (node_size > 1) {
    if (shm && ShmAllreduce::supports(t)) {
      shm->sum(t, meet(node));
    } else {
      meet(node)();
      mpi_sum(t, node);
    }
  }
  int leader_count = 1;
  if (leaders != MPI_COMM_NULL) MPI_Comm_size(leaders, &leader_count);
  if (leader_count > 1) {
    if (rendezvous) await_all_ranks(leaders);
    mpi_sum(t, leaders);
  }
  if (node_size > 1 && node_of.size() > static_cast<std::size_t>(node_size)) {
    if (shm) {
      shm->broadcast(t, 0, meet(node));
    } else {
      meet(node)();
      auto* base = static_cast<char*>(t.data_ptr());
      in_chunks(static_cast<std::int64_t>(t.nbytes()), 1, [&](std::int64_t offset, int count) {
        DPT_CHECK_MPI(MPI_Bcast(base + offset, count, MPI_BYTE, 0, node));
      });
    }
  }
}

// Across nodes (the Hierarchical path) the flat MPI collectives: a sharded collective moves each byte once between
// ranks, so the in-node stage that saves the all-reduce's inter-node traffic would save nothing here.
void MpiBackend::Shared::reduce_scatter(at::Tensor& t, bool rendezvous) {
  if (through_shm(t)) {
    shm->reduce_scatter(t, [this, rendezvous] {
      if (rendezvous) {
        await_all_ranks(comm);
      } else {
        DPT_CHECK_MPI(MPI_Barrier(comm));
      }
    });
    return;
  }
  int world = 1;
  int rank = 0;
  MPI_Comm_size(comm, &world);
  MPI_Comm_rank(comm, &rank);
  const std::int64_t shard = t.numel() / world;
  DPT_CHECK(shard <= INT_MAX, "reduce-scatter of ", shard, " elements per rank exceeds MPI's int count");
  if (rendezvous) await_all_ranks(comm);
  auto* base = static_cast<char*>(t.data_ptr());
  // In place, MPI leaves this rank's result at the start of the buffer.
  DPT_CHECK_MPI(MPI_Reduce_scatter_block(MPI_IN_PLACE, base, static_cast<int>(shard), mpi_type(t), sum_op(t), comm));
  if (rank > 0) {
    std::memcpy(base + rank * shard * t.element_size(), base, static_cast<std::size_t>(shard * t.element_size()));
  }
}

void MpiBackend::Shared::all_gather(at::Tensor& t) {
  if (through_shm(t)) {
    shm->all_gather(t, [this] { DPT_CHECK_MPI(MPI_Barrier(comm)); });
    return;
  }
  int world = 1;
  MPI_Comm_size(comm, &world);
  const std::int64_t bytes = static_cast<std::int64_t>(t.nbytes()) / world;
  DPT_CHECK(bytes <= INT_MAX, "all-gather of ", bytes, " bytes per rank exceeds MPI's 2 GiB count limit");
  DPT_CHECK_MPI(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t.data_ptr(), static_cast<int>(bytes), MPI_BYTE,
                              comm));
}

void MpiBackend::Shared::post_progress(std::uint64_t number, const std::string& what, bool finished) {
  const std::lock_guard<std::mutex> lock(progress_mutex);
  if (finished) {
    progress.finished = number;
  } else {
    progress.started = number;
    progress.what = what;
  }
  progress_since = std::chrono::steady_clock::now();
}

// "<started> <finished> <seconds since> <what>": parsed back by elsewhere().
std::string MpiBackend::Shared::progress_line() {
  const std::lock_guard<std::mutex> lock(progress_mutex);
  const double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - progress_since).count();
  return std::to_string(progress.started) + " " + std::to_string(progress.finished) + " " +
         std::to_string(static_cast<long>(age)) + " " + progress.what;
}

std::string MpiBackend::Shared::elsewhere(std::uint64_t number, const std::string& what) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const int mine = node_of[static_cast<std::size_t>(rank)];
  std::vector<int> others;
  for (std::size_t r = 0; r < node_of.size(); ++r) {
    if (node_of[r] != mine) others.push_back(static_cast<int>(r));
  }
  CollectiveProgress self;
  {
    const std::lock_guard<std::mutex> lock(progress_mutex);
    self = progress;
  }
  // The collective that holds this rank up: an earlier one when its communication thread is still in it.
  const bool stuck_earlier = self.started < number && self.finished < self.started;
  const std::uint64_t blocking = stuck_earlier ? self.started : number;
  const std::string blocking_what = stuck_earlier ? self.what : what;
  std::vector<std::string> clauses;
  std::vector<std::pair<std::string, std::vector<int>>> unreachable;  // host -> ranks, in rank order
  std::string why_unreachable;
  for (const PeerProbe::Answer& answer : probe->ask(others, kProbeTimeoutS)) {
    const std::string& host = probe->host(answer.rank);
    if (!answer.reached) {
      if (unreachable.empty() || unreachable.back().first != host) unreachable.push_back({host, {}});
      unreachable.back().second.push_back(answer.rank);
      why_unreachable = answer.text;
      continue;
    }
    CollectiveProgress other;
    long age = 0;
    std::istringstream line(answer.text);
    line >> other.started >> other.finished >> age >> std::ws;
    std::getline(line, other.what);
    clauses.push_back(progress_clause("rank " + std::to_string(answer.rank) + " on " + host, other, blocking,
                                      blocking_what, number));
  }
  std::string text;
  for (const auto& [host, ranks] : unreachable) {
    text += (text.empty() ? "" : "; ") + std::string("cannot reach host ") + host + " (" +
            probe->address(ranks.front()) + "): rank" + (ranks.size() == 1 ? " " : "s ") + rank_list(ranks) +
            " did not answer (" + why_unreachable + "): its link is down, or the host or its ranks are gone";
  }
  for (const std::string& clause : clauses) text += (text.empty() ? "" : "; ") + clause;
  return text;
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

std::shared_ptr<Work> MpiBackend::reduce_scatter(at::Tensor& flat, ReduceOp op) {
  return reduce_scatter(flat, op, false);
}

std::shared_ptr<Work> MpiBackend::reduce_scatter_overlapped(at::Tensor& flat, ReduceOp op) {
  return reduce_scatter(flat, op, world_size_ > 1);
}

std::shared_ptr<Work> MpiBackend::reduce_scatter(at::Tensor& flat, ReduceOp op, bool rendezvous) {
  check_host_contiguous(flat, "reduce_scatter");
  mpi_type(flat);
  const std::int64_t shard = shard_numel(flat, world_size_, "reduce_scatter");
  at::Tensor t = flat;
  const int world = world_size_;
  const int rank = rank_;
  return submit("reduce-scatter of " + std::to_string(t.nbytes()) + " bytes",
                [t, op, world, rank, shard, rendezvous](Shared& shared) mutable {
                  shared.reduce_scatter(t, rendezvous);
                  if (op == ReduceOp::Avg) t.narrow(0, rank * shard, shard).div_(world);
                });
}

std::shared_ptr<Work> MpiBackend::all_gather(at::Tensor& flat) {
  check_host_contiguous(flat, "all_gather");
  shard_numel(flat, world_size_, "all_gather");
  at::Tensor t = flat;
  return submit("all-gather of " + std::to_string(t.nbytes()) + " bytes",
                [t](Shared& shared) mutable { shared.all_gather(t); });
}

std::shared_ptr<Work> MpiBackend::barrier() {
  return submit("barrier", [](Shared& shared) { DPT_CHECK_MPI(MPI_Barrier(shared.comm)); });
}

}  // namespace dpt::distributed
