// W&B sink: per-step metrics, the config, tags, status and checkpoint versions to Weights & Biases through the
// wandb Python SDK, run in a driver process that follows the sink's on-disk spool, so that neither a dead driver
// nor a dead server blocks training or loses a step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "tracking/sink.h"

namespace dpt::tracking {

struct WandbOptions {
  std::string python = "python3";  // the interpreter that runs the driver (it must import wandb)
  std::string mode = "offline";    // "offline": files under run.dir/wandb for `wandb sync`; "online": the server
  std::string project = "dptrain";
  std::string entity;              // "": the W&B user's default entity
  // A driver that dies is started again after restart_min_s, doubling up to restart_max_s; after max_restarts
  // deaths in a row (a driver that lived restart_max_s breaks the row) the sink stops starting it and only spools.
  double restart_min_s = 1.0;
  double restart_max_s = 30.0;
  int max_restarts = 5;
  // close() waits this long for the driver to deliver what is left; then the driver finishes on its own.
  double close_wait_s = 8.0;
};

// The project's .venv python (scripts/setup-venv.sh installs the pinned wandb there) when it exists, else
// "python3" from PATH.
std::string default_wandb_python();

// tracking.wandb.python (empty: default_wandb_python()), tracking.wandb.mode, .project and .entity.
WandbOptions wandb_options(const Config& config);

// Every record and published checkpoint goes first to run.dir/wandb-spool.jsonl (one durable line each); the
// driver, tracking/wandb_driver.py, which the sink writes to run.dir/wandb-driver.py and runs with
// options.python (its output in run.dir/wandb-driver.log), logs them into the W&B run whose id is run.id
// (resumed, so `--resume` continues it): metrics at their step with their epoch and time, the config flattened
// ("train.lr"), the tags ("key=value" or "label"), and each checkpoint version as a version of the model
// artifact model-<run.id> (manifest.json as a file, the blobs as file:// references into the store, the store's
// aliases that name it). A driver that dies is started again and replays from the spool; what is left at the
// end is delivered by the next `--resume` of the run or by sync_wandb_run.
// The constructor checks that options.python imports wandb and throws dpt::Error naming tracking.wandb.python
// when it does not.
std::unique_ptr<Sink> make_wandb_sink(const RunInfo& run, const WandbOptions& options);

struct WandbSyncReport {
  std::int64_t entries = 0;    // entries in run_dir/wandb-spool.jsonl
  std::int64_t delivered = 0;  // of them, delivered (now or before)
  std::string mode;            // the run's tracking.wandb.mode
};

// `dptrain runs sync RUN_DIR --wandb`: runs the driver in the foreground over what run_dir/wandb-spool.jsonl
// holds that was not delivered, in the mode the run recorded. Delivering twice delivers nothing twice.
WandbSyncReport sync_wandb_run(const std::string& run_dir, const std::string& python);

}  // namespace dpt::tracking
