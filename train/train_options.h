// TrainOptions: what the training loop reads of the config, typed and read once per run; the train library's part
// of the config (model.*, train.*) and the whole schema, assembled from every library's part.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/lr_schedule.h"
#include "train/mixed_precision.h"
#include "train/optimizers.h"

namespace dpt::train {

// model.* and train.*; the choices of train.optimizer, train.lr_schedule and train.loss are their registries'
// names at the time of the call.
std::vector<ConfigKey> config_keys();

// Every key dptrain understands: core's (run.*, runtime.*), data.*, ddp.*, model.* and train.*, checkpoint.*,
// tracking.*. Built anew on each call, so names registered before it are accepted.
std::shared_ptr<const ConfigSchema> config_schema();

struct TrainOptions {
  std::string model;                 // model.name
  std::int64_t epochs = 3;           // train.epochs
  std::int64_t max_steps = 0;        // train.max_steps (0: no limit)
  std::int64_t batch_size = 64;      // train.batch_size, per rank
  std::int64_t eval_batch_size = 256;
  std::string optimizer;             // train.optimizer
  OptimizerSettings optimizer_settings;
  LrScheduleOptions schedule;
  std::string loss;                  // train.loss
  double grad_clip = 0.0;            // train.grad_clip (0: off)
  bool skip_nonfinite = false;       // train.nonfinite = "skip" (else "error")
  Precision precision = Precision::Float32;  // train.precision
  double loss_scale = 65536.0;               // train.loss_scale: fp16's initial dynamic loss scale
  std::int64_t loss_scale_growth_interval = 2000;  // train.loss_scale_growth_interval
  bool eval_every_epoch = true;
  std::int64_t accumulate_steps = 1;         // ddp.accumulate_steps: micro-batches of one loader batch
  std::int64_t accumulate_batches = 1;       // train.accumulate_batches: loader batches of one optimizer step
  std::int64_t broadcast_buffers_every = 1;  // ddp.broadcast_buffers_every (0: never)
  std::int64_t log_every = 50;               // tracking.log_every
  bool checkpoints = true;                   // checkpoint.enabled
  std::string checkpoint_dir;                // checkpoint.dir
  std::int64_t save_every = 0;               // checkpoint.every_steps (0: at the end only)
  std::uint64_t seed = 0;                    // run.seed

  static TrainOptions from_config(const Config& config);
};

}  // namespace dpt::train
