// dptrain's subcommands (train, eval, data, runs, ckpt, models) and the top-level error policy.
#include "cli/cli.h"

#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cli/ckpt_commands.h"
#include "cli/data_commands.h"
#include "cli/eval_command.h"
#include "cli/runs_commands.h"
#include "core/check.h"
#include "core/config.h"
#include "core/runtime.h"
#include "distributed/make_backend.h"
#include "train/model_registry.h"
#include "train/preemption.h"
#include "train/train_options.h"
#include "train/trainer.h"

namespace dpt::cli {
namespace {

std::string format_duration(double seconds) {
  std::ostringstream out;
  const auto total = static_cast<long>(seconds + 0.5);
  if (total >= 3600) out << total / 3600 << "h";
  if (total >= 60) out << (total % 3600) / 60 << "m";
  out << total % 60 << "s";
  return out.str();
}

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string resume;
  train::InitFrom init;
  bool help_config = false;
};

Config load_config(const Runtime& runtime, const std::string& path, const std::vector<std::string>& overrides) {
  DPT_CHECK(!path.empty(), "no CONFIG given: pass a TOML file, e.g. examples/fashion_mnist/config.toml");
  std::optional<Config> config;
  runtime.all_or_none("reading the config", [&] { config = Config::load(train::config_schema(), path, overrides); });
  return *config;
}

void configure_runtime(Runtime& runtime, const Config& config) {
  RuntimeOptions options;
  options.threads = static_cast<int>(config.get_int("runtime.threads"));
  options.all_ranks_print = config.get_bool("runtime.all_ranks_print");
  options.bind_cores = config.get_bool("runtime.bind_cores");
  runtime.configure(options);
}

// Like the Trainer's set-up, a backend that cannot be made (no GPU, no NCCL) is the same error on every rank.
distributed::Backends make_backends(const Runtime& runtime, const Config& config) {
  distributed::Backends backends;
  runtime.all_or_none("starting the backends", [&] {
    backends = distributed::make_backends(runtime, distributed::BackendOptions::from_config(config));
  });
  return backends;
}

// Returns the process exit code: 0, or train::kPreemptedExitCode after a signal-triggered save.
int run_train(Runtime& runtime, const TrainArgs& args) {
  if (args.help_config) {
    runtime.out() << config_reference(*train::config_schema());
    return 0;
  }
  const Config config = load_config(runtime, args.config, args.overrides);
  configure_runtime(runtime, config);
  train::Trainer trainer(config, runtime, make_backends(runtime, config));
  const train::FitResult result = trainer.fit(args.resume, args.init);
  auto& out = runtime.out();
  out << "dptrain: finished " << result.steps << " steps in " << format_duration(result.seconds);
  if (result.evaluated) out << format_eval(result.eval, "test ");
  if (!result.checkpoint.empty()) {
    out << " | checkpoint " << result.checkpoint << " in " << config.get_string("checkpoint.dir");
  }
  out << " | metrics in " << config.get_string("run.output_dir") << "/" << result.run_id << "/" << std::endl;
  if (!result.preempted) return 0;
  out << "dptrain: stopped by a signal after saving; exit code " << train::kPreemptedExitCode
      << " asks the scheduler to requeue; continue with --resume latest" << std::endl;
  return train::kPreemptedExitCode;
}

void run_eval_command(Runtime& runtime, const EvalArgs& args) {
  const Config config = load_config(runtime, args.config, args.overrides);
  configure_runtime(runtime, config);
  run_eval(runtime, config, make_backends(runtime, config), args);
}

int report_and_exit(const Runtime* runtime, const std::exception& e, bool agreed) {
  const bool main_rank = !runtime || runtime->is_main();
  if (!agreed || main_rank) std::cerr << "dptrain: error: " << e.what() << std::endl;
  if (runtime && !agreed) runtime->abort_job(1);
  return 1;
}

}  // namespace

int run(int argc, char** argv) {
  std::unique_ptr<Runtime> runtime;
  try {
    runtime = std::make_unique<Runtime>(argc, argv);

    CLI::App app{"dptrain: data-parallel training of LibTorch models over MPI ranks"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "dptrain 0.1.0");

    TrainArgs train_args;
    auto* train = app.add_subcommand("train", "Train a model from a TOML config; run under mpirun for several ranks");
    train->add_option("CONFIG", train_args.config, "TOML config file (see --help-config for every key)");
    train->add_option("--set", train_args.overrides, "Override a config key: --set train.lr=3e-4 (repeatable)")
        ->take_all();
    train->add_option("--resume", train_args.resume,
                      "Continue from a checkpoint: latest, vN (e.g. v3) or a version directory");
    train->add_option("--init-from", train_args.init.ref,
                      "Start a new run from a version's weights (continual learning): latest, vN, an alias or a "
                      "version directory; fresh schedule, step counter, data cursor and run id");
    train->add_option("--init-from-dir", train_args.init.store,
                      "Checkpoint store that holds the --init-from version (default: checkpoint.dir)");
    train->add_flag("--init-optimizer", train_args.init.optimizer,
                    "With --init-from: also take the version's optimizer state (Adam's moments, SGD's momentum)");
    train->add_flag("--help-config", train_args.help_config, "List every config key with type, default and range");
    train->footer("Example: mpirun -np 2 --bind-to none dptrain train examples/fashion_mnist/config.toml\n"
                  "Metrics: <run.output_dir>/<run-id>/metrics.jsonl; checkpoints: <checkpoint.dir>/versions/.\n"
                  "Every version records its parent (the version --resume or --init-from started from): see\n"
                  "dptrain ckpt lineage.");

    EvalArgs eval_args;
    auto* eval = app.add_subcommand(
        "eval", "Evaluate a checkpoint on data.test of a config: loss, accuracy, per-class accuracy, confusion matrix");
    eval->add_option("CONFIG", eval_args.config, "TOML config file (model and data.test are read from it)")
        ->required();
    eval->add_option("--set", eval_args.overrides, "Override a config key (repeatable)")->take_all();
    eval->add_option("--checkpoint", eval_args.checkpoint, "Checkpoint: latest, vN, an alias or a version directory")
        ->capture_default_str();
    eval->add_option("--dir", eval_args.store, "Checkpoint store (default: checkpoint.dir)");
    eval->footer("Needs only data.test and the store: no training data, and checkpoint.enabled may be false.\n"
                 "Writes <run.output_dir>/<eval-run-id>/eval.json (loss, accuracy, per-class accuracy, confusion\n"
                 "matrix: row = label, column = prediction) and confusion.png, and records eval/loss, eval/accuracy\n"
                 "and eval/class_accuracy/N to tracking.sinks at the checkpoint's step.");

    add_data_commands(app, *runtime);
    add_runs_commands(app, *runtime);

    add_ckpt_commands(app, *runtime);

    auto* models = app.add_subcommand("models", "List the registered models (model.name)");

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      std::ostringstream quiet;
      const int code = runtime->is_main() ? app.exit(e) : app.exit(e, quiet, quiet);
      return code;
    }

    if (train->parsed()) return run_train(*runtime, train_args);
    if (eval->parsed()) run_eval_command(*runtime, eval_args);
    if (models->parsed() && runtime->is_main()) {
      for (const auto& [name, description] : train::ModelRegistry::global().list()) {
        std::cout << std::left << std::setw(14) << name << description << "\n";
      }
    }
    return 0;
  } catch (const AgreedError& e) {
    return report_and_exit(runtime.get(), e, true);
  } catch (const std::exception& e) {
    return report_and_exit(runtime.get(), e, false);
  }
}

}  // namespace dpt::cli
