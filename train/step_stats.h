// StepStats: this rank's step times over a logging interval, and the cross-rank metrics of a log step (global mean
// loss, step-time spread that exposes a straggler, system use), gathered through the control backend.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "distributed/backend.h"

namespace dpt::train {

struct StepTimes {
  double data_wait = 0.0;  // waiting for the loader
  double compute = 0.0;    // forward, backward and the gradients' norm
  double optimizer = 0.0;  // clipping and the optimizer step
  double comm = 0.0;       // in Reducer::finish (communication backward did not hide), buffer broadcasts and the
                           // step vote
};

class StepStats {
 public:
  // Starts the first interval.
  StepStats();

  void add(const StepTimes& times, std::int64_t global_samples);

  // Collective over `control` (every rank, at the same step): one all-gather of every rank's numbers, from which
  // every rank derives the same global values: the mean loss of the whole global batch (`local_loss` is this rank's
  // mean over its `local_samples`), the max and min over ranks of the per-step busy time (data wait + compute,
  // leaving out the all-reduce, which makes every rank wait for the slowest) and the rank of the max. "rank/..." values are this rank's
  // own. `gpu` is the CUDA device index for its memory use (-1: none). Starts the next interval.
  std::map<std::string, double> collect(distributed::Backend& control, double local_loss,
                                        std::int64_t local_samples, int gpu);

 private:
  using Clock = std::chrono::steady_clock;
  void restart(double cpu_seconds);

  Clock::time_point start_;
  std::int64_t steps_ = 0;
  std::int64_t samples_ = 0;
  StepTimes sum_;
  double cpu_seconds_ = 0.0;  // process CPU time at the interval's start
};

}  // namespace dpt::train
