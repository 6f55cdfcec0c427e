// RunParts: what one training run is made of (model, optimizer, Reducer, loss, schedule, loaders, checkpoint
// store), built once from the config, or from parts a program brings, on the device the backends were made for.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include "checkpoint/checkpoint_store.h"
#include "core/config.h"
#include "data/loader.h"
#include "data/source.h"
#include "distributed/make_backend.h"
#include "distributed/reducer.h"
#include "train/losses.h"
#include "train/lr_schedule.h"
#include "train/train_options.h"
#include "train/train_state.h"

namespace dpt::train {

// What a program may hand the Trainer instead of what the config names.
struct TrainerParts {
  std::shared_ptr<data::Source> train_data;  // default: data.train's HDF5 files
  std::shared_ptr<data::Source> test_data;   // default: data.test's (none: no evaluation)
  std::optional<Loss> loss;                  // default: train.loss from the registry
};

// Parameters, then buffers, by name: what a checkpoint holds of a model.
NamedTensorRefs named_state(const torch::nn::Module& module);

struct RunParts {
  // Builds every part on every rank (the caller agrees on failures, see Runtime::all_or_none); shards the data by
  // the backends' rank and world size.
  RunParts(const Config& config, const distributed::Backends& backends, TrainerParts parts);

  TrainOptions options;
  at::Device device;
  torch::nn::AnyModule model;
  std::shared_ptr<torch::nn::Module> module;
  std::vector<at::Tensor> params;   // trainable, in registration order
  std::vector<at::Tensor> buffers;  // BatchNorm running statistics and the like, kept equal to rank 0's
  std::unique_ptr<torch::optim::Optimizer> optimizer;  // over `params`, or with ddp.zero = 1 the reducer's shard pieces
  std::unique_ptr<distributed::Reducer> reducer;
  Loss loss;
  LrSchedule schedule;
  std::unique_ptr<data::Loader> train_loader;
  std::unique_ptr<data::Loader> test_loader;  // null: no evaluation
  std::unique_ptr<checkpoint::CheckpointStore> store;  // null: checkpoint.enabled = false
  nlohmann::json dataset_digest;  // of the training files, for lineage in checkpoints (rank 0, files only)

  // Parameters, then buffers, by name: what a checkpoint holds of the model and what rank 0 broadcasts at start.
  NamedTensorRefs named_state() const;
  // Optimizer steps from `state` to the end of training at this world size (train.epochs, train.max_steps).
  std::int64_t steps_left(const TrainState& state) const;
  // The step count training ends at: the steps taken before `state` (at any world size) and those left.
  std::int64_t total_steps(const TrainState& state) const;
  // Where the learning-rate schedule stands at `state` (samples, not steps: see LrSchedule).
  SchedulePosition schedule_position(const TrainState& state) const;
};

}  // namespace dpt::train
