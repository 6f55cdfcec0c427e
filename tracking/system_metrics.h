// System metrics of this process: CPU time, resident memory, and GPU memory when the run uses CUDA.
#pragma once

namespace dpt::tracking {

struct SystemSample {
  double cpu_seconds = 0;       // user + system CPU time of the process so far
  double rss_bytes = 0;         // resident set size now (/proc/self/statm)
  double gpu_memory_bytes = -1; // memory in use on the CUDA device, all processes; -1 when not measured
};

// `cuda_device` < 0 (a CPU run, or a build without CUDA) leaves gpu_memory_bytes at -1. Never throws: a
// value that cannot be read stays at its default.
SystemSample sample_system(int cuda_device = -1);

}  // namespace dpt::tracking
