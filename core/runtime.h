// Runtime: how this process was launched (mpirun, srun, alone), MPI start-up, rank identity, threads, output.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/error.h"

namespace dpt {

struct RuntimeOptions {
  int threads = 0;               // torch + OpenBLAS threads per rank; 0: this rank's share of its CPUs
  bool all_ranks_print = false;  // by default only rank 0 writes progress to stdout
  bool bind_cores = true;        // pin each rank to its own `threads` CPUs when the launcher left them shared
};

class Runtime {
 public:
  // Starts MPI when launched by mpirun/srun (MPI_THREAD_MULTIPLE requested, SERIALIZED required:
  // the MPI backend issues every collective from one communication thread), else runs as one rank.
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }  // ranks on this node
  bool is_main() const { return rank_ == 0; }
  bool uses_mpi() const { return uses_mpi_; }
  const std::string& launcher() const { return launcher_; }
  const std::string& host() const { return host_; }

  // Applies thread counts, CPU binding and output policy; returns the threads per rank chosen. Call it before
  // starting threads, so that they inherit the binding.
  int configure(const RuntimeOptions& options);
  int threads() const { return threads_; }
  // The CPUs configure() pinned this rank to; empty when it left the launcher's binding as it was.
  const std::vector<int>& pinned_cpus() const { return pinned_cpus_; }

  // Progress output: rank 0's stdout; other ranks' only with all_ranks_print.
  std::ostream& out() const;

  // Runs `step` on every rank and agrees on the outcome: if any rank throws, every rank throws a
  // dpt::Error with the first failing rank's message (rank 0 prints it; nobody hangs, no MPI_Abort).
  void all_or_none(const std::string& what, const std::function<void()>& step) const;

  // Ends the whole job after an error on this rank: MPI_Abort when other ranks exist.
  [[noreturn]] void abort_job(int exit_code) const;

 private:
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int threads_ = 1;
  bool ranks_share_cpus_ = false;  // more than one rank on this node, all allowed on the same CPUs
  std::vector<int> pinned_cpus_;
  bool uses_mpi_ = false;
  bool all_ranks_print_ = false;
  std::string launcher_ = "single process";
  std::string host_;
};

// An error every rank already agreed on (see Runtime::all_or_none): rank 0 reports it once and every
// rank exits cleanly with a non-zero code.
class AgreedError : public Error {
 public:
  explicit AgreedError(const std::string& message) : Error(message, SourceLocation{nullptr, 0}) {}
};

}  // namespace dpt
