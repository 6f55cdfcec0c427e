// TrainState: where a run stands (step, epoch, global cursor, run id, last metrics), its snapshot into a checkpoint
// version with the model and the optimizer, and the way back; the generators' seed at each step.
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
  std::int64_t step = 0;    // optimizer steps taken, counted at the world size and step size of their time
  std::int64_t epoch = 0;
  std::int64_t cursor = 0;  // global samples of `epoch` already consumed (always at the end of an optimizer step)
  std::string run_id;
  std::int64_t skipped_steps = 0;  // steps whose update was skipped (non-finite loss or gradients)
  LossScale loss_scale;            // fp16 training's; also saved (and unused) at other precisions
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  std::optional<EvalResult> last_eval;

  // Samples of the global order seen so far (epochs x samples per epoch + cursor): what the learning-rate schedule
  // counts and what seeds each step's generators, the same at any world size.
  std::int64_t position(std::int64_t samples_per_epoch) const { return epoch * samples_per_epoch + cursor; }
};

// A checkpoint version's contents: `model` (parameters, then buffers, by name), the optimizer's state (named
// tensors of optimizer_state.h) and a manifest state of `state` merged into `run` (world size, config, lineage:
// whatever the caller records). No generator state: every step seeds its generators from where training stands
// (seed_step_generators). `copy`: host copies, for a save that training overlaps.
checkpoint::CheckpointContents snapshot(const TrainState& state, const NamedTensorRefs& model,
                                        checkpoint::NamedTensors optimizer_state, nlohmann::json run, bool copy);

// How a resume hands the optimizer its saved state (load_optimizer_state, or its sharded form).
using OptimizerStateLoader = std::function<void(const checkpoint::NamedTensors&)>;

// Loads a version's tensors into `model`, the optimizer's through `load_optimizer`, and returns its TrainState;
// `model_name` and `ref` name it in errors. A version's `rng` tensors (generator states, written by earlier builds
// of dptrain) are not needed.
TrainState restore(const checkpoint::CheckpointContents& contents, const NamedTensorRefs& model,
                   const OptimizerStateLoader& load_optimizer, const std::string& ref, const std::string& model_name);

// The seed of `rank`'s generators for the step that starts at global sample `position` (epochs x samples per
// epoch + cursor): a hash of (run seed, rank, position). Dropout and any other random operation of a step so depend
// on where training stands, not on how it got there: a resume at the same world size continues bit-identically
// without a saved generator state, and ranks that did not exist at the save draw streams of their own.
std::uint64_t step_seed(std::uint64_t seed, int rank, std::int64_t position);

// Seeds the default CPU generator, and `device`'s when it is a CUDA device, with step_seed.
void seed_step_generators(std::uint64_t seed, int rank, std::int64_t position, const at::Device& device);

// Copies `tensors` into the model's tensors of the same names and shapes (weights for evaluation, or a resume).
void load_model_tensors(const checkpoint::NamedTensors& tensors, const NamedTensorRefs& model, const std::string& ref,
                        const std::string& model_name);

}  // namespace dpt::train
