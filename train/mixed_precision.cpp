// Autocast through LibTorch's C++ API (1.13: set_enabled / set_cpu_enabled and per-device dtypes; 2.4 and later:
// the device-type calls that replace them), and the loss scale's growth and backoff.
#include "train/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "core/check.h"
#include "core/registry.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DPTRAIN_AUTOCAST_BY_DEVICE_TYPE
#endif

namespace dpt::train {
namespace {

const std::pair<const char*, Precision> kPrecisions[] = {
    {"fp32", Precision::Float32}, {"bf16", Precision::BFloat16}, {"fp16", Precision::Float16}};

at::ScalarType dtype_of(Precision precision) {
  return precision == Precision::BFloat16 ? at::kBFloat16 : precision == Precision::Float16 ? at::kHalf : at::kFloat;
}

bool autocast_enabled(at::DeviceType type) {
#ifdef DPTRAIN_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(type);
#else
  return type == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

at::ScalarType autocast_dtype(at::DeviceType type) {
#ifdef DPTRAIN_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(type);
#else
  return type == at::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast(at::DeviceType type, bool enabled, at::ScalarType dtype) {
#ifdef DPTRAIN_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

std::vector<std::string> precision_names() {
  std::vector<std::string> names;
  for (const auto& [name, value] : kPrecisions) names.emplace_back(name);
  return names;
}

Precision parse_precision(const std::string& name) {
  for (const auto& [known, value] : kPrecisions) {
    if (name == known) return value;
  }
  DPT_THROW("unknown precision '", name, "' (train.precision)", unknown_name_hint(name, precision_names(), "precision"));
}

void check_precision(Precision precision, const at::Device& device) {
  if (precision == Precision::Float32) return;
  DPT_CHECK(device.is_cuda() || device.is_cpu(), "train.precision = \"", precision_names()[static_cast<int>(precision)],
            "\" needs a CPU or CUDA model, not one on ", device.str());
  const at::ScalarType previous = autocast_dtype(device.type());
  try {
    set_autocast(device.type(), autocast_enabled(device.type()), dtype_of(precision));
  } catch (const c10::Error& e) {
    DPT_THROW("train.precision = \"", precision_names()[static_cast<int>(precision)], "\" on ", device.str(),
              ": this LibTorch's autocast cannot run it (", e.what_without_backtrace(), "); use train.precision = ",
              "\"bf16\" on the CPU, or fp16 on a GPU");
  }
  set_autocast(device.type(), autocast_enabled(device.type()), previous);
}

namespace {

// Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX), from /proc/cpuinfo's flags.
bool cpu_has_bf16_instructions() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream flags(line.substr(line.find(':') + 1));
    std::string flag;
    while (flags >> flag) {
      if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    }
    return false;
  }
  return false;
}

}  // namespace

std::string precision_warning(Precision precision, const at::Device& device) {
  if (precision != Precision::BFloat16 || !device.is_cpu() || cpu_has_bf16_instructions()) return "";
  return "train.precision = \"bf16\" on a CPU without AVX512-BF16 or AMX: LibTorch runs bf16 convolutions and "
         "matrix products on reference paths, about 11x slower than fp32 here (docs/benchmarks.md); bf16 pays off "
         "on GPUs and on CPUs with those instructions";
}

AutocastGuard::AutocastGuard(Precision precision, const at::Device& device) {
  if (precision == Precision::Float32) return;
  active_ = true;
  type_ = device.type();
  was_enabled_ = autocast_enabled(type_);
  previous_dtype_ = autocast_dtype(type_);
  set_autocast(type_, true, dtype_of(precision));
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(type_, was_enabled_, previous_dtype_);
}

void LossScale::update(bool finite, std::int64_t growth_interval) {
  if (!finite) {
    value *= 0.5;
    good_steps = 0;
  } else if (++good_steps >= growth_interval) {
    value *= 2.0;
    good_steps = 0;
  }
}

}  // namespace dpt::train
