// The built-in learning-rate shapes and the warmup ramp in front of them.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace dpt::train {

LrScheduleOptions LrScheduleOptions::from_config(const Config& config) {
  LrScheduleOptions o;
  o.name = config.get_string("train.lr_schedule");
  o.base_lr = config.get_float("train.lr");
  o.gamma = config.get_float("train.lr_gamma");
  o.step_epochs = config.get_int("train.lr_step_epochs");
  o.warmup_epochs = config.get_float("train.lr_warmup_epochs");
  return o;
}

Registry<ScheduleShape>& lr_schedules() {
  static Registry<ScheduleShape>* registry = [] {
    auto* r = new Registry<ScheduleShape>("learning-rate schedule", "train.lr_schedule");
    r->add("constant", [](const SchedulePosition&, const LrScheduleOptions&) { return 1.0; }, "the base rate");
    r->add(
        "cosine",
        [](const SchedulePosition& at, const LrScheduleOptions&) {
          constexpr double pi = 3.14159265358979323846;
          const double progress = std::min(1.0, at.samples / std::max(1.0, at.total_samples));
          return 0.5 * (1.0 + std::cos(pi * progress));
        },
        "half a cosine from the base rate to 0 at the end of training");
    r->add(
        "step",
        [](const SchedulePosition& at, const LrScheduleOptions& o) {
          const double epochs = std::floor(at.samples / std::max(1.0, at.samples_per_epoch));
          return std::pow(o.gamma, std::floor(epochs / static_cast<double>(o.step_epochs)));
        },
        "x lr_gamma every lr_step_epochs epochs");
    return r;
  }();
  return *registry;
}

LrSchedule::LrSchedule(LrScheduleOptions options)
    : options_(std::move(options)), shape_(lr_schedules().get(options_.name)) {}

double LrSchedule::lr(const SchedulePosition& at) const {
  const double warmup_samples = options_.warmup_epochs * at.samples_per_epoch;
  // The first step's samples count as seen, so a warmup never starts at a rate of exactly 0.
  const double ramp = warmup_samples > 0 ? std::min(1.0, (at.samples + 1) / warmup_samples) : 1.0;
  return options_.base_lr * ramp * shape_(at, options_);
}

}  // namespace dpt::train
