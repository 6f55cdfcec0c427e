// Runtime: launch detection, MPI initialisation and shutdown, threads per rank, agreement on set-up errors.
#include "core/runtime.h"

#include <dlfcn.h>
#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>

#include "core/check.h"

namespace dpt {
namespace detail {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, length);
}

}  // namespace detail

namespace {

bool has_env(const char* name) { return std::getenv(name) != nullptr; }

// Which launcher started us; MPI is used whenever a process manager that MPI understands is present.
std::string detect_launcher(bool& use_mpi) {
  use_mpi = true;
  if (has_env("OMPI_COMM_WORLD_SIZE")) return "mpirun (Open MPI)";
  if (has_env("PMIX_RANK") && has_env("SLURM_PROCID")) return "srun (PMIx)";
  if (has_env("PMI_RANK") || has_env("PMI_SIZE")) return "PMI launcher";
  if (has_env("PMIX_RANK")) return "PMIx launcher";
  use_mpi = false;
  return "single process";
}

std::ostream& null_stream() {
  static std::ostream sink(nullptr);
  return sink;
}

// OpenBLAS reads OPENBLAS_NUM_THREADS only when it loads, so the count is set through its API when present.
void set_openblas_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

// Whether the OpenBLAS in this process is its pthread build, whose own pool of threads spins against LibTorch's
// OpenMP threads whenever a rank runs more than one (openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP).
bool openblas_has_own_threads() {
  using GetParallel = int (*)();
  auto fn = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  return fn != nullptr && fn() == 1;
}

// The CPUs this process may run on (its affinity mask, which a launcher's binding or a container narrows).
std::vector<int> allowed_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &mask)) cpus.push_back(cpu);
    }
  }
  if (cpus.empty()) {
    for (unsigned cpu = 0; cpu < std::max(1u, std::thread::hardware_concurrency()); ++cpu) {
      cpus.push_back(static_cast<int>(cpu));
    }
  }
  return cpus;
}

// Restricts this thread, and every thread it starts from now on, to `cpus`.
bool pin_to(const std::vector<int>& cpus) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  for (int cpu : cpus) CPU_SET(cpu, &mask);
  return sched_setaffinity(0, sizeof(mask), &mask) == 0;
}

// Whether every rank of `node` may run on exactly the same CPUs: the launcher did not bind them apart.
bool same_cpus_on_node(MPI_Comm node, const std::vector<int>& cpus) {
  std::uint64_t hash = 1469598103934665603ULL;
  for (int cpu : cpus) hash = (hash ^ static_cast<std::uint64_t>(cpu)) * 1099511628211ULL;
  std::uint64_t range[2] = {hash, ~hash};  // min of the hash and of its complement: equal iff all hashes are equal
  MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_UINT64_T, MPI_MIN, node);
  return range[0] == hash && range[1] == ~hash;
}

}  // namespace

Runtime::Runtime(int& argc, char**& argv) {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  host_ = name;
  launcher_ = detect_launcher(uses_mpi_);
  if (uses_mpi_) {
    int provided = 0;
    DPT_CHECK_MPI(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided));
    DPT_CHECK(provided >= MPI_THREAD_SERIALIZED,
              "the MPI library provides thread level ", provided, " but dptrain needs MPI_THREAD_SERIALIZED: ",
              "use an MPI built with thread support (Debian's Open MPI is)");
    // Errors come back as codes so that they become dpt::Error with context instead of aborting silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    ranks_share_cpus_ = local_size_ > 1 && same_cpus_on_node(node, allowed_cpus());
    MPI_Comm_free(&node);
  }
  set_error_identity(rank_, host_);
}

Runtime::~Runtime() {
  if (uses_mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

int Runtime::configure(const RuntimeOptions& options) {
  const std::vector<int> cpus = allowed_cpus();
  // Ranks left on the same CPUs by their launcher share them out; ranks bound apart each use their own.
  const int ranks_on_cpus = ranks_share_cpus_ ? local_size_ : 1;
  const int cpu_count = static_cast<int>(cpus.size());
  threads_ = options.threads > 0 ? options.threads : std::max(1, cpu_count / ranks_on_cpus);
  // Threads that migrate between cores, and ranks that take turns on one, lose cache and time: each rank gets
  // its own `threads_` of the shared CPUs when they go round (pinned before any worker thread starts).
  pinned_cpus_.clear();
  if (options.bind_cores && ranks_share_cpus_ && ranks_on_cpus * threads_ <= cpu_count) {
    std::vector<int> mine(cpus.begin() + local_rank_ * threads_, cpus.begin() + (local_rank_ + 1) * threads_);
    if (pin_to(mine)) pinned_cpus_ = std::move(mine);
  }
  at::set_num_threads(threads_);
  set_openblas_threads(threads_);
  if (threads_ > 1 && is_main() && openblas_has_own_threads()) {
    std::cerr << "dptrain: warning: OpenBLAS's pthread build is loaded; with " << threads_
              << " threads per rank its threads spin against LibTorch's (up to 2x slower steps): install "
                 "libopenblas0-openmp and select it (update-alternatives --set libblas.so.3-x86_64-linux-gnu "
                 "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3; scripts/install-deps.sh does both)"
              << std::endl;
  }
  all_ranks_print_ = options.all_ranks_print;
  return threads_;
}

std::ostream& Runtime::out() const { return (is_main() || all_ranks_print_) ? std::cout : null_stream(); }

void Runtime::all_or_none(const std::string& what, const std::function<void()>& step) const {
  // The full text of the failing rank's error: "[rank R on HOST] what is wrong; what to do (file:line)".
  std::string message;
  try {
    step();
  } catch (const std::exception& e) {
    message = e.what();
    if (message.empty()) message = "unknown error";
  }
  if (!uses_mpi_ || world_size_ == 1) {
    if (!message.empty()) throw AgreedError(what + " failed: " + message);
    return;
  }
  // The lowest failing rank tells everyone what went wrong.
  int failing = message.empty() ? world_size_ : rank_;
  int first = world_size_;
  DPT_CHECK_MPI(MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (first == world_size_) return;
  int length = static_cast<int>(message.size());
  DPT_CHECK_MPI(MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD));
  message.resize(length);
  DPT_CHECK_MPI(MPI_Bcast(message.data(), length, MPI_CHAR, first, MPI_COMM_WORLD));
  throw AgreedError(what + " failed: " + message);
}

void Runtime::abort_job(int exit_code) const {
  std::cout.flush();
  std::cerr.flush();
  if (uses_mpi_ && world_size_ > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace dpt
