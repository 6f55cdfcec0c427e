// StepStats: interval sums on this rank, one all-gather at log steps.
#include "train/step_stats.h"

#include <algorithm>

#include "tracking/system_metrics.h"

namespace dpt::train {

StepStats::StepStats() { restart(tracking::sample_system().cpu_seconds); }

void StepStats::restart(double cpu_seconds) {
  start_ = Clock::now();
  steps_ = 0;
  samples_ = 0;
  sum_ = StepTimes{};
  cpu_seconds_ = cpu_seconds;
}

void StepStats::add(const StepTimes& times, std::int64_t global_samples) {
  ++steps_;
  samples_ += global_samples;
  sum_.data_wait += times.data_wait;
  sum_.compute += times.compute;
  sum_.comm += times.comm;
  sum_.optimizer += times.optimizer;
}

std::map<std::string, double> StepStats::collect(distributed::Backend& control, double local_loss,
                                                 std::int64_t local_samples, int gpu) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double steps = static_cast<double>(std::max<std::int64_t>(1, steps_));
  const double busy = (sum_.data_wait + sum_.compute + sum_.optimizer) / steps;
  at::Tensor mine = at::tensor({local_loss * static_cast<double>(local_samples), static_cast<double>(local_samples),
                                busy, sum_.data_wait / steps, sum_.compute / steps, sum_.comm / steps,
                                sum_.optimizer / steps},
                               at::kDouble);
  at::Tensor all = at::empty({control.world_size(), mine.numel()}, at::kDouble);
  control.allgather(mine, all)->wait();
  const at::Tensor sum = all.sum(0);
  const at::Tensor max = std::get<0>(all.max(0));
  const double busy_max = max[2].item<double>();
  const double busy_min = all.select(1, 2).min().item<double>();
  // Which rank: a ratio well above 1 says that one is slow, this says which one to look at.
  const double busy_max_rank = static_cast<double>(all.select(1, 2).argmax().item<std::int64_t>());
  const double count = sum[1].item<double>();

  const tracking::SystemSample system = tracking::sample_system(gpu);
  std::map<std::string, double> values = {
      {"train/loss", count > 0 ? sum[0].item<double>() / count : 0.0},
      {"train/samples_per_s", static_cast<double>(samples_) / elapsed},
      {"train/data_wait_fraction", sum_.data_wait / elapsed},
      {"train/step_time_s", elapsed / steps},
      {"train/step_time_max_s", busy_max},
      {"train/step_time_max_rank", busy_max_rank},
      {"train/step_time_min_s", busy_min},
      {"train/step_time_ratio", busy_min > 0 ? busy_max / busy_min : 1.0},
      {"train/data_wait_s", max[3].item<double>()},
      {"train/compute_s", max[4].item<double>()},
      {"train/comm_s", max[5].item<double>()},
      {"train/optimizer_s", max[6].item<double>()},
      {"rank/step_time_s", busy},
      {"rank/data_wait_s", sum_.data_wait / steps},
      {"rank/compute_s", sum_.compute / steps},
      {"rank/comm_s", sum_.comm / steps},
      {"rank/optimizer_s", sum_.optimizer / steps},
      {"system/cpu_cores", (system.cpu_seconds - cpu_seconds_) / elapsed},
      {"system/rss_bytes", system.rss_bytes}};
  if (system.gpu_memory_bytes >= 0) values["system/gpu_memory_bytes"] = system.gpu_memory_bytes;
  restart(system.cpu_seconds);
  return values;
}

}  // namespace dpt::train
