// TrainState: where a run stands (step, epoch, global cursor, run id, last metrics), and its snapshot into a
// checkpoint version with the model, the optimizer and every rank's RNG state, and the way back.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include "checkpoint/checkpoint_store.h"
#include "train/mixed_precision.h"

namespace dpt::train {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;  // classification losses only (NaN otherwise)
  std::int64_t samples = 0;
};

using NamedTensorRefs = std::vector<std::pair<std::string, at::Tensor>>;

struct TrainState {
  std::int64_t step = 0;    // optimizer steps taken, counted at the world size of their time
  std::int64_t epoch = 0;
  std::int64_t cursor = 0;  // global samples of `epoch` already consumed
  std::string run_id;
  std::int64_t skipped_steps = 0;  // steps whose update was skipped (non-finite loss or gradients)
  LossScale loss_scale;            // fp16 training's; also saved (and unused) at other precisions
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  std::optional<EvalResult> last_eval;

  // Samples of the global order seen so far: what the learning-rate schedule counts.
  double samples_seen(std::int64_t samples_per_epoch) const {
    return static_cast<double>(epoch) * static_cast<double>(samples_per_epoch) + static_cast<double>(cursor);
  }
};

// A checkpoint version's contents: `model` (parameters, then buffers, by name), the optimizer's state (named
// tensors of optimizer_state.h), one CPU generator state per rank (`rng_states`, [world, n]) and a manifest state of
// `state` merged into `run` (world size, config, lineage: whatever the caller records). `copy`: host copies, for a
// save that training overlaps.
checkpoint::CheckpointContents snapshot(const TrainState& state, const NamedTensorRefs& model,
                                        checkpoint::NamedTensors optimizer_state, const at::Tensor& rng_states,
                                        nlohmann::json run, bool copy);

// How a resume hands the optimizer its saved state (load_optimizer_state, or its sharded form).
using OptimizerStateLoader = std::function<void(const checkpoint::NamedTensors&)>;

// Loads a version's tensors into `model`, the optimizer's through `load_optimizer`, this rank's generator state
// (rank 0's for ranks that did not exist at the save) and returns its TrainState; `model_name` and `ref` name it in
// errors.
TrainState restore(const checkpoint::CheckpointContents& contents, const NamedTensorRefs& model,
                   const OptimizerStateLoader& load_optimizer, int rank, const std::string& ref,
                   const std::string& model_name);

// Copies `tensors` into the model's tensors of the same names and shapes (weights for evaluation, or a resume).
void load_model_tensors(const checkpoint::NamedTensors& tensors, const NamedTensorRefs& model, const std::string& ref,
                        const std::string& model_name);

}  // namespace dpt::train
