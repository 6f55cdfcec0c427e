// `dptrain runs sync`: replays a run's MLflow spool (or its metrics.jsonl) to an MLflow tracking server, or what its
// W&B spool holds undelivered to W&B.
#include "cli/runs_commands.h"

#include <iostream>
#include <memory>
#include <string>

#include "core/check.h"
#include "tracking/mlflow_sink.h"
#include "tracking/wandb_sink.h"

namespace dpt::cli {
namespace {

struct SyncArgs {
  std::string run_dir;
  std::string mlflow;
  std::string experiment;
  bool wandb = false;
  std::string python;
};

void run_wandb_sync(const SyncArgs& args) {
  const tracking::WandbSyncReport report =
      tracking::sync_wandb_run(args.run_dir, args.python.empty() ? tracking::default_wandb_python() : args.python);
  DPT_CHECK(report.delivered == report.entries, report.entries - report.delivered, " entries of ", args.run_dir,
            "/wandb-spool.jsonl are still undelivered: see ", args.run_dir, "/wandb-driver.log");
  std::cout << "dptrain: synced " << args.run_dir << " (wandb-spool.jsonl) to W&B (" << report.mode << "): "
            << report.entries << " entries delivered, nothing left"
            << (report.mode == "offline" ? " | upload with: wandb sync " + args.run_dir + "/wandb/offline-run-*" : "")
            << std::endl;
}

void run_sync(const SyncArgs& args) {
  DPT_CHECK(args.wandb != !args.mlflow.empty(), "runs sync needs one destination: --mlflow URL or --wandb");
  if (args.wandb) return run_wandb_sync(args);
  tracking::MlflowOptions options;
  options.uri = args.mlflow;
  options.experiment = args.experiment;
  const tracking::MlflowSyncReport report = tracking::sync_mlflow_run(args.run_dir, options);
  DPT_CHECK(report.still_spooled == 0, report.still_spooled, " requests of ", args.run_dir, "/", report.source,
            " are still unsent (", report.sent, " sent): see the message above; run `dptrain runs sync` again ",
            "when the server answers");
  std::cout << "dptrain: synced " << args.run_dir << " (" << report.source << ") to " << args.mlflow << ": "
            << report.sent << " requests sent, nothing left | MLflow run " << report.mlflow_run_id << std::endl;
}

}  // namespace

void add_runs_commands(CLI::App& app, const Runtime& runtime) {
  auto* runs = app.add_subcommand("runs", "Tools for runs in <run.output_dir>/<run-id>/");
  runs->require_subcommand(1);
  auto args = std::make_shared<SyncArgs>();
  auto* sync = runs->add_subcommand(
      "sync", "Send a run's metrics, params, tags and final status to MLflow: what its mlflow sink could not send "
              "(RUN_DIR/mlflow-spool.jsonl), or the whole RUN_DIR/metrics.jsonl of a run without the mlflow sink; "
              "or, with --wandb, what its wandb sink did not deliver (RUN_DIR/wandb-spool.jsonl) to W&B");
  sync->add_option("RUN_DIR", args->run_dir, "The run directory, e.g. runs/20261127-050102-a1b2c3")->required();
  auto* mlflow = sync->add_option("--mlflow", args->mlflow, "MLflow tracking server, e.g. http://127.0.0.1:5000");
  sync->add_option("--experiment", args->experiment,
                   "MLflow experiment (default: the run's tracking.mlflow.experiment, or dptrain)");
  sync->add_flag("--wandb", args->wandb,
                 "Deliver to W&B through the run's driver, in the run's tracking.wandb.mode (offline: then upload "
                 "with `wandb sync RUN_DIR/wandb/offline-run-*`)")
      ->excludes(mlflow);
  sync->add_option("--python", args->python,
                   "With --wandb: the Python with the wandb package (default: as tracking.wandb.python's)");
  sync->footer("Requests the server acknowledged, and entries W&B holds, are not sent again, so syncing twice is "
               "safe.");
  sync->callback([args, &runtime] {
    if (runtime.is_main()) run_sync(*args);
  });
}

}  // namespace dpt::cli
