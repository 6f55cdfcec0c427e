// System metrics: getrusage for CPU time, /proc/self/statm for RSS, cudaMemGetInfo for GPU memory.
#include "tracking/system_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#ifdef DPTRAIN_HAS_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dpt::tracking {

SystemSample sample_system(int cuda_device) {
  SystemSample sample;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    sample.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
  }
  std::ifstream statm("/proc/self/statm");
  double total_pages = 0;
  double resident_pages = 0;
  if (statm >> total_pages >> resident_pages) {
    sample.rss_bytes = resident_pages * static_cast<double>(sysconf(_SC_PAGESIZE));
  }
#ifdef DPTRAIN_HAS_CUDA
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  if (cuda_device >= 0 && cudaSetDevice(cuda_device) == cudaSuccess &&
      cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    sample.gpu_memory_bytes = static_cast<double>(total_bytes - free_bytes);
  }
#else
  (void)cuda_device;
#endif
  return sample;
}

}  // namespace dpt::tracking
