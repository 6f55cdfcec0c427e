// The schema of every config key dptrain understands: type, default, range and one line of help.
#include "core/config.h"

namespace dpt {
namespace {

constexpr double kNoLimit = 1e300;

ConfigKey flag(std::string name, bool fallback, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Bool, fallback, std::move(help), -kNoLimit, kNoLimit, {}, false};
}

ConfigKey integer(std::string name, std::int64_t fallback, double min, double max, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Int, fallback, std::move(help), min, max, {}, false};
}

ConfigKey number(std::string name, double fallback, double min, double max, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Float, fallback, std::move(help), min, max, {}, false};
}

ConfigKey text(std::string name, std::string fallback, std::string help, std::vector<std::string> choices = {}) {
  return ConfigKey{std::move(name), ConfigType::String, std::move(fallback), std::move(help),
                   -kNoLimit,      kNoLimit,           std::move(choices),  false};
}

ConfigKey required_text(std::string name, std::string help) {
  ConfigKey key = text(std::move(name), "", std::move(help));
  key.required = true;
  return key;
}

ConfigKey text_list(std::string name, std::vector<std::string> fallback, std::string help,
                    std::vector<std::string> choices) {
  return ConfigKey{std::move(name), ConfigType::StringList, std::move(fallback), std::move(help),
                   -kNoLimit,      kNoLimit,               std::move(choices),  false};
}

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> keys = {
      text("run.name", "", "human-readable run name; the run id is generated"),
      integer("run.seed", 0, 0, 9.2e18, "seed of model init, shuffling and every RNG"),
      text("run.output_dir", "runs", "metrics go to <output_dir>/<run-id>/"),

      text("model.name", "fashion_cnn", "registered model name (see `dptrain models`)"),

      required_text("data.train", "HDF5 file of the training split, or a glob (\"data/train-*.h5\": name order)"),
      text_list("data.train_files", {}, "more training files or globs, read after data.train", {}),
      text("data.test", "", "HDF5 file or glob with the evaluation split (empty: no evaluation)"),
      text_list("data.test_files", {}, "more evaluation files or globs, read after data.test", {}),
      text("data.inputs", "images", "dataset name of the inputs inside the HDF5 files"),
      text("data.targets", "labels", "dataset name of the integer class targets"),
      number("data.scale", 1.0 / 255.0, -kNoLimit, kNoLimit, "inputs are multiplied by this first"),
      number("data.mean", 0.0, -kNoLimit, kNoLimit, "then the mean is subtracted"),
      number("data.std", 1.0, 1e-12, kNoLimit, "then divided by std"),
      flag("data.shuffle", true, "shuffle the global sample order each epoch"),
      text("data.last_batch", "uneven", "a short final global batch: split unevenly over ranks, dropped, or padded "
           "from the epoch's start", {"uneven", "drop_last", "pad"}),
      integer("data.cache_mb", 0, 0, 1e9, "hold the whole training split in memory when it fits in this many MiB "
              "per rank (0: off)"),
      integer("data.prefetch", 2, 0, 64, "batches the loader thread reads ahead (0: read inline)"),

      integer("train.epochs", 3, 1, 1e9, "passes over the training split"),
      integer("train.max_steps", 0, 0, 9.2e18, "stop after this many optimizer steps (0: no limit)"),
      integer("train.batch_size", 64, 1, 1e9, "samples per rank per step (global batch = ranks x this)"),
      text("train.optimizer", "adam", "optimizer", {"adam", "adamw", "sgd"}),
      flag("train.fused_optimizer", true, "adam/adamw: update each parameter in one pass (same state and results "
           "to float32 rounding as LibTorch's op-by-op step, which false selects)"),
      number("train.lr", 1e-3, 1e-12, 1e6, "learning rate"),
      text("train.lr_schedule", "constant", "learning-rate schedule", {"constant", "cosine", "step"}),
      integer("train.lr_step_epochs", 1, 1, 1e9, "with lr_schedule = step: epochs between decays"),
      number("train.lr_gamma", 0.5, 0, 1, "with lr_schedule = step: decay factor"),
      number("train.momentum", 0.9, 0, 1, "SGD momentum"),
      number("train.weight_decay", 0.0, 0, 1e6, "weight decay"),
      number("train.grad_clip", 0.0, 0, kNoLimit, "clip the global gradient norm to this (0: off)"),
      flag("train.eval_every_epoch", true, "evaluate on data.test after each epoch"),

      integer("runtime.threads", 0, 0, 4096, "torch/OpenBLAS threads per rank (0: this rank's share of the CPUs it may use)"),
      text("runtime.device", "cpu", "where the model runs", {"cpu", "cuda", "auto"}),
      flag("runtime.all_ranks_print", false, "let every rank print, not only rank 0"),
      flag("runtime.bind_cores", true,
           "pin each rank to its own runtime.threads CPUs when the launcher left the node's ranks on the same CPUs"),

      number("ddp.bucket_cap_mb", 25.0, 1e-6, 1e6, "gradient bucket size in MiB (one all-reduce per bucket)"),
      number("ddp.first_bucket_mb", 1.0, 1e-6, 1e6, "size of the first bucket, small so communication starts early"),
      integer("ddp.accumulate_steps", 1, 1, 1e6,
              "split each rank's train.batch_size samples into this many micro-batches; one all-reduce per step"),
      flag("ddp.find_unused_parameters", false,
           "parameters without a gradient in a step count as zeros (off: such a step is an error naming them)"),
      integer("ddp.broadcast_buffers_every", 1, 0, 9.2e18,
              "copy rank 0's buffers (BatchNorm statistics) to every rank every N steps, before forward (0: never)"),
      text("ddp.compression", "none", "all-reduce gradients as 16-bit values, summed in float32",
           {"none", "bf16", "fp16"}),
      number("ddp.timeout_s", 300.0, 1e-3, 1e9, "a collective that takes longer ends the job with an error"),
      number("ddp.shared_memory_mb", 16.0, 0.0, 1e6,
             "MPI ranks on one node all-reduce through two buffers of this many MiB each in /dev/shm (0: MPI_Allreduce)"),

      flag("checkpoint.enabled", true, "save checkpoints at all"),
      text("checkpoint.dir", "checkpoints", "checkpoint store directory"),
      integer("checkpoint.every_steps", 0, 0, 9.2e18, "save every N steps (0: only at the end)"),
      integer("checkpoint.keep_last", 0, 0, 1e9, "keep only the newest K versions (0: keep all)"),
      integer("checkpoint.keep_every", 0, 0, 1e9, "also keep every version whose number is a multiple of M (0: off)"),
      flag("checkpoint.async", false, "copy tensors to host memory at the step, write and publish in the background"),
      text("checkpoint.best_metric", "", "metric at save time that picks the `best` alias, e.g. eval/accuracy"),
      text("checkpoint.best_mode", "max", "whether a higher or lower best_metric is better", {"max", "min"}),
      text("checkpoint.on_error", "stop", "a failed save stops training or warns and continues",
           {"stop", "continue"}),

      text_list("tracking.sinks", {"console", "jsonl", "tensorboard"}, "metric sinks",
                {"console", "jsonl", "mlflow", "tensorboard", "prometheus"}),
      integer("tracking.log_every", 50, 1, 1e9, "record train metrics every N steps"),
      text_list("tracking.tags", {}, "run tags: \"key=value\" or a bare \"label\" (MLflow tags, manifests)", {}),
      integer("tracking.prometheus.port", 9400, 0, 65535,
              "prometheus sink: rank r serves /metrics on port + r (0: any free port)"),
      text("tracking.prometheus.bind", "127.0.0.1", "prometheus sink: address to listen on (0.0.0.0: every interface)"),
      text("tracking.mlflow.uri", "",
           "MLflow server of the mlflow sink, e.g. http://127.0.0.1:5000 (empty: $MLFLOW_TRACKING_URI)"),
      text("tracking.mlflow.experiment", "dptrain", "MLflow experiment of the run (created when missing)"),
      text("tracking.mlflow.registered_model", "",
           "MLflow registered model that each checkpoint version becomes a version of (empty: no Model Registry)"),
  };
  return keys;
}

}  // namespace dpt
