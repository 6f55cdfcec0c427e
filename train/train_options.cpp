// The model.* and train.* keys, the typed options read from them once, and the assembled schema.
#include "train/train_options.h"

#include <algorithm>

#include "checkpoint/checkpointer.h"
#include "data/make_loader.h"
#include "distributed/make_backend.h"
#include "tracking/sinks.h"
#include "train/losses.h"

namespace dpt::train {

std::vector<ConfigKey> config_keys() {
  using namespace config_key;
  return {
      text("model.name", "fashion_cnn", "registered model name (see `dptrain models`)"),
      integer("train.epochs", 3, 1, 1e9, "passes over the training split"),
      integer("train.max_steps", 0, 0, 9.2e18, "stop after this many optimizer steps (0: no limit)"),
      integer("train.batch_size", 64, 1, 1e9, "samples per rank per loader batch (global batch = ranks x this x "
              "train.accumulate_batches)"),
      integer("train.accumulate_batches", 1, 1, 1e6, "gather this many loader batches into one optimizer step "
              "(gradients add up locally, one all-reduce at the last): the same step as one batch this many times "
              "as large; ddp.accumulate_steps instead splits each batch to save memory"),
      text("train.optimizer", "adam", "optimizer", optimizers().names()),
      flag("train.fused_optimizer", true, "adam/adamw/sgd: update each parameter in one pass (same state and "
           "results to float32 rounding as LibTorch's op-by-op step, which false selects)"),
      number("train.lr", 1e-3, 1e-12, 1e6, "learning rate"),
      text("train.lr_schedule", "constant", "learning-rate schedule over the samples seen (the same at any world "
           "size)", lr_schedules().names()),
      integer("train.lr_step_epochs", 1, 1, 1e9, "with lr_schedule = step: epochs between decays"),
      number("train.lr_gamma", 0.5, 0, 1, "with lr_schedule = step: decay factor"),
      number("train.lr_warmup_epochs", 0.0, 0, 1e9, "ramp the rate up linearly from 0 over this many epochs' samples"),
      number("train.momentum", 0.9, 0, 1, "SGD momentum"),
      number("train.weight_decay", 0.0, 0, 1e6, "weight decay"),
      number("train.grad_clip", 0.0, 0, kNoLimit, "clip the global gradient norm to this (0: off)"),
      text("train.nonfinite", "error", "a NaN or infinity in the loss or a gradient on any rank: error (stop, naming "
           "the step, rank and parameter or samples) or skip (no update on any rank; counted as train/skipped_steps)",
           {"error", "skip"}),
      text("train.precision", "fp32", "forward under autocast in bf16 or fp16 (CUDA; bf16 on the CPU), float32 "
           "master weights and gradients; fp16 scales the loss dynamically", precision_names()),
      number("train.loss_scale", 65536.0, 1.0, 1e30, "fp16: the initial loss scale (halved after a step with "
             "non-finite gradients, which is skipped)"),
      integer("train.loss_scale_growth_interval", 2000, 1, 1e9, "fp16: double the loss scale after this many "
              "finite steps in a row"),
      text("train.loss", "cross_entropy", "loss over the model's output and the targets", losses().names()),
      flag("train.eval_every_epoch", true, "evaluate on data.test after each epoch"),
  };
}

std::shared_ptr<const ConfigSchema> config_schema() {
  return make_schema({runtime_config_keys(), data::config_keys(), distributed::config_keys(), config_keys(),
                      checkpoint::config_keys(), tracking::config_keys()});
}

TrainOptions TrainOptions::from_config(const Config& config) {
  TrainOptions o;
  o.model = config.get_string("model.name");
  o.epochs = config.get_int("train.epochs");
  o.max_steps = config.get_int("train.max_steps");
  o.batch_size = config.get_int("train.batch_size");
  // Evaluation keeps no activations for backward, so it reads in larger batches.
  o.eval_batch_size = std::max<std::int64_t>(256, o.batch_size);
  o.optimizer = config.get_string("train.optimizer");
  o.optimizer_settings = OptimizerSettings::from_config(config);
  o.schedule = LrScheduleOptions::from_config(config);
  o.loss = config.get_string("train.loss");
  o.grad_clip = config.get_float("train.grad_clip");
  o.skip_nonfinite = config.get_string("train.nonfinite") == "skip";
  o.precision = parse_precision(config.get_string("train.precision"));
  o.loss_scale = config.get_float("train.loss_scale");
  o.loss_scale_growth_interval = config.get_int("train.loss_scale_growth_interval");
  o.eval_every_epoch = config.get_bool("train.eval_every_epoch");
  o.accumulate_steps = config.get_int("ddp.accumulate_steps");
  o.accumulate_batches = config.get_int("train.accumulate_batches");
  o.broadcast_buffers_every = config.get_int("ddp.broadcast_buffers_every");
  o.log_every = config.get_int("tracking.log_every");
  o.checkpoints = config.get_bool("checkpoint.enabled");
  o.checkpoint_dir = config.get_string("checkpoint.dir");
  o.save_every = config.get_int("checkpoint.every_steps");
  o.seed = static_cast<std::uint64_t>(config.get_int("run.seed"));
  return o;
}

}  // namespace dpt::train
