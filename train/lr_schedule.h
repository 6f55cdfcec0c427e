// LrSchedule: the learning rate as a function of the samples seen, not of steps, so that a run resumed at another
// world size (other steps per epoch) continues the same schedule. Shapes are registered by train.lr_schedule name.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/config.h"
#include "core/registry.h"

namespace dpt::train {

// Where training stands, in samples of the global order.
struct SchedulePosition {
  double samples = 0;            // seen so far: epoch * samples_per_epoch + global cursor
  double samples_per_epoch = 1;  // the training split's size
  double total_samples = 1;      // where training ends (train.epochs, or train.max_steps x global batch)
};

struct LrScheduleOptions {
  std::string name = "constant";  // train.lr_schedule
  double base_lr = 1e-3;          // train.lr
  double gamma = 0.5;             // train.lr_gamma (step)
  std::int64_t step_epochs = 1;   // train.lr_step_epochs (step)
  double warmup_epochs = 0;       // train.lr_warmup_epochs: a linear ramp from 0, before any shape

  static LrScheduleOptions from_config(const Config& config);
};

// A shape: the factor (of the base rate) at a position.
using ScheduleShape = std::function<double(const SchedulePosition&, const LrScheduleOptions&)>;

// constant, cosine (to 0 at total_samples), step (x gamma every step_epochs epochs); users add their own.
Registry<ScheduleShape>& lr_schedules();

class LrSchedule {
 public:
  explicit LrSchedule(LrScheduleOptions options);  // an unknown name throws with the closest known one
  double lr(const SchedulePosition& at) const;

 private:
  LrScheduleOptions options_;
  ScheduleShape shape_;
};

}  // namespace dpt::train
