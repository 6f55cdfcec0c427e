// Evaluation: loss, accuracy and (for `dptrain eval`) per-class results of a model on a split, sharded over the
// ranks and combined; and a checkpoint's evaluation from data.test and the store alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/any.h>

#include "core/config.h"
#include "core/runtime.h"
#include "data/loader.h"
#include "distributed/backend.h"
#include "distributed/make_backend.h"
#include "train/losses.h"
#include "train/mixed_precision.h"
#include "train/train_state.h"

namespace dpt::train {

// What evaluating a model needs: the Trainer's parts, or the eval command's own.
struct EvalParts {
  torch::nn::AnyModule& model;
  torch::nn::Module& module;
  data::Loader& loader;
  const Loss& loss;
  Precision precision;
  at::Device device;
  distributed::Backend& control;
};

// Per-class results of a classification loss, the same on every rank.
struct ClassEval {
  EvalResult totals;
  std::int64_t classes = 0;            // the output's last dimension (0: not a classification loss)
  std::vector<std::int64_t> confusion;  // classes x classes, row-major: row = label, column = prediction; empty
                                        // beyond kMaxConfusionClasses

  bool has_confusion() const;

  std::int64_t class_samples(std::int64_t label) const;  // labels of class `label` seen
  double class_accuracy(std::int64_t label) const;       // NaN for a class with no samples
};

// The most classes whose confusion matrix `evaluate_classes` gathers (classes^2 counts go through one all-reduce).
constexpr std::int64_t kMaxConfusionClasses = 1024;

// `size` rows of the batch's targets from row `begin`, on `device`; with a classification loss, checked against
// the output's classes first, so that a bad label names its sample (via the loader's source).
at::Tensor checked_targets(const data::Batch& batch, const data::Loader& loader, const Loss& loss,
                           const at::Tensor& output, std::int64_t begin, std::int64_t size, at::Device device);

// Loss (and, for a classification loss, accuracy) over every sample of the loader's split, in eval mode.
EvalResult evaluate(const EvalParts& parts);

// evaluate() plus, for a classification loss, the class count and (up to kMaxConfusionClasses classes) the
// confusion matrix.
ClassEval evaluate_classes(const EvalParts& parts);

// What `dptrain eval` evaluated: the version and its results.
struct CheckpointEval {
  ClassEval eval;
  std::string version;          // "v000003"
  std::string store;            // the root of the store that holds it
  std::string manifest_sha256;
  nlohmann::json state;         // the version's manifest state (step, epoch, run id, ...)
  std::vector<std::string> test_files;
};

// Builds the config's model and data.test loader (no training data; checkpoints need not be enabled), loads the
// model tensors of the version `ref` names in `store` (every file verified) and evaluates them on every rank.
// Set-up failures are one agreed error (Runtime::all_or_none).
CheckpointEval evaluate_checkpoint(const Config& config, const Runtime& runtime,
                                   const distributed::Backends& backends, const std::string& store,
                                   const std::string& ref);

}  // namespace dpt::train
