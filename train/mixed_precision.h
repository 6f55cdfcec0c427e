// Mixed precision: train.precision (fp32, bf16, fp16), the autocast region a forward pass runs in, and the dynamic
// loss scale of fp16 training. Parameters, gradients and optimizer state stay float32 (master weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace dpt::train {

enum class Precision { Float32, BFloat16, Float16 };

// The train.precision values: "fp32", "bf16", "fp16".
std::vector<std::string> precision_names();
Precision parse_precision(const std::string& name);

// Throws a dpt::Error when this LibTorch's autocast cannot run `precision` on `device` (LibTorch 1.13 autocasts
// to bfloat16 only on the CPU): the run is refused at set-up instead of silently training in float32.
void check_precision(Precision precision, const at::Device& device);

// The warning a run at `precision` on `device` deserves, or "": bf16 on a CPU without bfloat16 arithmetic, where
// LibTorch's bf16 convolutions and matrix products take reference paths many times slower than float32.
std::string precision_warning(Precision precision, const at::Device& device);

// Autocast on `device` for the lifetime of the guard (forward and loss; backward replays the casts it recorded),
// LibTorch 1.13's per-device calls or 2.x's device-type ones; float32 is no region at all. Leaving the outermost
// region drops autocast's cache of cast weights, which the optimizer step is about to change.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, const at::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  at::DeviceType type_ = at::kCPU;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

// The dynamic loss scale of fp16 training: the loss is multiplied by `value` before backward so that small
// gradients survive float16; a step whose gradients are not finite is skipped and halves it, `growth_interval`
// finite steps in a row double it (PyTorch's GradScaler defaults). Saved in checkpoints, so a resume is exact.
struct LossScale {
  double value = 65536.0;
  std::int64_t good_steps = 0;  // finite steps since the last change

  void update(bool finite, std::int64_t growth_interval);
};

}  // namespace dpt::train
