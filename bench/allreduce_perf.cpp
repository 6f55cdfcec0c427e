// allreduce_perf: an nccl-tests style sweep over message sizes of Backend::allreduce against raw MPI_Allreduce,
// both measured in the same run. Columns follow nccl-tests: algbw = bytes / time, busbw = algbw * 2(n-1)/n.
//   mpirun -np 2 --bind-to none build/bench/allreduce_perf [--backend mpi|nccl] [--min-bytes 8] [--max-bytes 64M]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "core/check.h"
#include "core/runtime.h"
#include "distributed/mpi_backend.h"
#ifdef DPTRAIN_HAS_NCCL
#include "distributed/nccl_backend.h"
#include "distributed/rendezvous.h"
#endif

namespace {

using dpt::distributed::Backend;

struct Options {
  std::string backend = "mpi";
  std::int64_t min_bytes = 8;
  std::int64_t max_bytes = std::int64_t{64} << 20;
  int rounds = 5;  // alternating rounds per size; the median is reported (this machine is shared and noisy)
};

std::int64_t parse_bytes(const std::string& text) {
  std::size_t used = 0;
  std::int64_t value = std::stoll(text, &used);
  const std::string suffix = text.substr(used);
  if (suffix == "K") value <<= 10;
  else if (suffix == "M") value <<= 20;
  else if (suffix == "G") value <<= 30;
  else DPT_CHECK(suffix.empty(), "size '", text, "': use a number of bytes with an optional K, M or G suffix");
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    DPT_CHECK(i + 1 < argc, "option ", arg, " needs a value; options: --backend mpi|nccl, --min-bytes N, ",
              "--max-bytes N, --rounds N");
    const std::string value = argv[++i];
    if (arg == "--backend") o.backend = value;
    else if (arg == "--min-bytes") o.min_bytes = parse_bytes(value);
    else if (arg == "--max-bytes") o.max_bytes = parse_bytes(value);
    else if (arg == "--rounds") o.rounds = std::stoi(value);
    else DPT_THROW("unknown option ", arg, "; options: --backend mpi|nccl, --min-bytes N, --max-bytes N, --rounds N");
  }
  DPT_CHECK(o.backend == "mpi" || o.backend == "nccl", "--backend ", o.backend, ": use mpi or nccl");
  DPT_CHECK(o.min_bytes >= 4 && o.min_bytes <= o.max_bytes && o.rounds > 0, "need 4 <= --min-bytes <= --max-bytes ",
            "and --rounds > 0");
  return o;
}

std::unique_ptr<Backend> make_backend_under_test(const Options& o, const dpt::Runtime& runtime) {
  if (o.backend == "mpi") return std::make_unique<dpt::distributed::MpiBackend>(MPI_COMM_WORLD);
#ifdef DPTRAIN_HAS_NCCL
  const auto store = dpt::distributed::rendezvous_store(runtime, 300.0);
  return std::make_unique<dpt::distributed::NcclBackend>(*store, runtime.rank(), runtime.world_size(),
                                                         runtime.local_rank());
#else
  DPT_THROW("--backend nccl: this build has no NCCL backend (CUDA and NCCL were not found at configure time)");
#endif
}

at::TensorOptions buffer_options(const Options& o, const Backend& backend) {
  auto options = at::TensorOptions().dtype(at::kFloat);
#ifdef DPTRAIN_HAS_NCCL
  if (o.backend == "nccl") {
    return options.device(at::kCUDA, static_cast<const dpt::distributed::NcclBackend&>(backend).device());
  }
#endif
  return options;
}

// Seconds per call of `op` run `iters` times after a barrier; the slowest rank's figure, as nccl-tests reports.
template <typename Op>
double time_per_call(int iters, Op&& op) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) op();
  double local = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  double slowest = 0.0;
  MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Enough calls for a measurable interval (~20 ms per round at bandwidths around 2 GB/s), at least 3.
int iterations_for(std::int64_t bytes) {
  return static_cast<int>(std::clamp<std::int64_t>((std::int64_t{40} << 20) / bytes, 3, 1000));
}

}  // namespace

int main(int argc, char** argv) {
  dpt::Runtime runtime(argc, argv);
  try {
    runtime.configure(dpt::RuntimeOptions{1, false});
    const Options o = parse(argc, argv);
    DPT_CHECK(runtime.uses_mpi(), "allreduce_perf compares against raw MPI_Allreduce: run it under mpirun, e.g. ",
              "mpirun -np 2 --bind-to none ", argv[0]);
    auto backend = make_backend_under_test(o, runtime);
    const int n = backend->world_size();
    const double bus_factor = 2.0 * (n - 1) / n;
    auto& out = runtime.out();
    out << "# allreduce_perf: float32 sum, " << n << " rank(s), dptrain backend '" << backend->name()
        << "' vs raw MPI_Allreduce (host buffers, in place); median of " << o.rounds << " alternating rounds\n"
        << "# busbw = algbw * 2(n-1)/n; ratio = dptrain busbw / MPI busbw (= MPI time / dptrain time)\n";
    char line[256];
    std::snprintf(line, sizeof(line), "%12s %10s | %10s %9s %9s | %10s %9s %9s | %6s %s\n", "size(B)", "count",
                  "mpi(us)", "algbw", "busbw", "dptrain(us)", "algbw", "busbw", "ratio", "check");
    out << line;
    double worst_large_ratio = 1e30;
    for (std::int64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 2) {
      const std::int64_t count = bytes / 4;
      at::Tensor host = at::zeros({count}, at::kFloat);
      at::Tensor tensor = at::zeros({count}, buffer_options(o, *backend));

      // Correctness first: every rank contributes rank + 1, so each element must become n(n+1)/2.
      tensor.fill_(backend->rank() + 1);
      backend->allreduce(tensor, dpt::distributed::ReduceOp::Sum)->wait();
      const bool correct = at::all(tensor.cpu().eq(n * (n + 1) / 2.0)).item<bool>();
      tensor.zero_();

      const int iters = iterations_for(bytes);
      auto raw = [&] { DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, host.data_ptr(), static_cast<int>(count), MPI_FLOAT,
                                                   MPI_SUM, MPI_COMM_WORLD)); };
      auto ours = [&] { backend->allreduce(tensor, dpt::distributed::ReduceOp::Sum)->wait(); };
      time_per_call(std::max(1, iters / 5), raw);  // warm-up: connections, caches, page faults
      time_per_call(std::max(1, iters / 5), ours);
      std::vector<double> raw_times, our_times;
      for (int r = 0; r < o.rounds; ++r) {
        raw_times.push_back(time_per_call(iters, raw));
        our_times.push_back(time_per_call(iters, ours));
      }
      const double t_raw = median(raw_times);
      const double t_ours = median(our_times);
      const double algbw_raw = static_cast<double>(bytes) / t_raw / 1e9;
      const double algbw_ours = static_cast<double>(bytes) / t_ours / 1e9;
      const double ratio = t_raw / t_ours;
      if (bytes >= (std::int64_t{1} << 20)) worst_large_ratio = std::min(worst_large_ratio, ratio);
      std::snprintf(line, sizeof(line), "%12lld %10lld | %10.2f %9.3f %9.3f | %10.2f %9.3f %9.3f | %6.3f %s\n",
                    static_cast<long long>(bytes), static_cast<long long>(count), t_raw * 1e6, algbw_raw,
                    algbw_raw * bus_factor, t_ours * 1e6, algbw_ours, algbw_ours * bus_factor, ratio,
                    correct ? "ok" : "WRONG");
      out << line << std::flush;
      DPT_CHECK(correct, "allreduce of ", bytes, " bytes through the ", backend->name(), " backend gave a wrong sum");
    }
    if (worst_large_ratio < 1e30) {
      out << "# worst ratio from 1 MiB up: " << worst_large_ratio << " (target >= 0.95): "
          << (worst_large_ratio >= 0.95 ? "met" : "MISSED") << "\n";
    }
    out << "# (algbw/busbw in GB/s)" << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "allreduce_perf: " << e.what() << std::endl;
    runtime.abort_job(1);
  }
  return 0;
}
