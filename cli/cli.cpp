// dptrain's subcommands: train, eval, data import-idx|inspect, ckpt list, models; and the top-level error policy.
#include "cli/cli.h"

#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>

#include "checkpoint/checkpoint_store.h"
#include "core/check.h"
#include "core/config.h"
#include "core/runtime.h"
#include "data/import_idx.h"
#include "distributed/make_backend.h"
#include "train/model_registry.h"
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
  bool help_config = false;
};

struct EvalArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string checkpoint = "latest";
};

struct ImportArgs {
  std::vector<std::string> inputs;
  std::string out;
};

Config load_config(const Runtime& runtime, const std::string& path, const std::vector<std::string>& overrides) {
  DPT_CHECK(!path.empty(), "no CONFIG given: pass a TOML file, e.g. examples/fashion_mnist/config.toml");
  std::optional<Config> config;
  runtime.all_or_none("reading the config", [&] { config = Config::load(path, overrides); });
  return *config;
}

void configure_runtime(Runtime& runtime, const Config& config) {
  RuntimeOptions options;
  options.threads = static_cast<int>(config.get_int("runtime.threads"));
  options.all_ranks_print = config.get_bool("runtime.all_ranks_print");
  runtime.configure(options);
}

void run_train(Runtime& runtime, const TrainArgs& args) {
  if (args.help_config) {
    runtime.out() << config_reference();
    return;
  }
  const Config config = load_config(runtime, args.config, args.overrides);
  configure_runtime(runtime, config);
  auto backend = distributed::make_backend(runtime);
  train::Trainer trainer(config, runtime, *backend);
  const train::FitResult result = trainer.fit(args.resume);
  auto& out = runtime.out();
  out << "dptrain: finished " << result.steps << " steps in " << format_duration(result.seconds);
  if (result.evaluated) {
    out << " | test accuracy " << std::fixed << std::setprecision(4) << result.eval.accuracy << " | test loss "
        << result.eval.loss << std::defaultfloat;
  }
  if (!result.checkpoint.empty()) {
    out << " | checkpoint " << result.checkpoint << " in " << config.get_string("checkpoint.dir");
  }
  out << " | metrics in " << config.get_string("run.output_dir") << "/" << result.run_id << "/" << std::endl;
}

void run_eval(Runtime& runtime, const EvalArgs& args) {
  const Config config = load_config(runtime, args.config, args.overrides);
  configure_runtime(runtime, config);
  auto backend = distributed::make_backend(runtime);
  train::Trainer trainer(config, runtime, *backend);
  trainer.load_weights(args.checkpoint);
  const train::EvalResult result = trainer.evaluate();
  runtime.out() << "dptrain: checkpoint " << args.checkpoint << " on " << config.get_string("data.test") << ": "
                << result.samples << " samples | accuracy " << std::fixed << std::setprecision(4) << result.accuracy
                << " | loss " << result.loss << std::endl;
}

void run_import_idx(const Runtime& runtime, const ImportArgs& args) {
  if (!runtime.is_main()) return;
  if (args.inputs.size() == 1) {
    for (const auto& path : data::import_idx_dir(args.inputs[0], args.out)) std::cout << "wrote " << path << "\n";
    return;
  }
  DPT_CHECK(args.inputs.size() == 2, "data import-idx takes DIR, or IMAGES LABELS");
  data::import_idx(args.inputs[0], args.inputs[1], args.out);
  std::cout << "wrote " << args.out << "\n";
}

void run_ckpt_list(const Runtime& runtime, const std::string& dir) {
  if (!runtime.is_main()) return;
  checkpoint::CheckpointStore store(dir);
  const auto versions = store.list();
  if (versions.empty()) {
    std::cout << "no checkpoints in " << dir << "\n";
    return;
  }
  std::cout << std::left << std::setw(10) << "version" << std::setw(10) << "step" << std::setw(24) << "created"
            << "path\n";
  for (const auto& v : versions) {
    std::cout << std::setw(10) << v.name << std::setw(10) << v.step << std::setw(24) << v.created << v.path << "\n";
  }
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
    train->add_flag("--help-config", train_args.help_config, "List every config key with type, default and range");
    train->footer("Example: mpirun -np 2 --bind-to none dptrain train examples/fashion_mnist/config.toml\n"
                  "Metrics: <run.output_dir>/<run-id>/metrics.jsonl; checkpoints: <checkpoint.dir>/versions/.");

    EvalArgs eval_args;
    auto* eval = app.add_subcommand("eval", "Evaluate a checkpoint on data.test of a config");
    eval->add_option("CONFIG", eval_args.config, "TOML config file (model and data.test are read from it)")
        ->required();
    eval->add_option("--set", eval_args.overrides, "Override a config key (repeatable)")->take_all();
    eval->add_option("--checkpoint", eval_args.checkpoint, "Checkpoint: latest, vN or a version directory")
        ->capture_default_str();

    auto* data = app.add_subcommand("data", "Dataset tools");
    data->require_subcommand(1);
    ImportArgs import_args;
    auto* import_idx = data->add_subcommand(
        "import-idx", "Convert gzip IDX files (MNIST, Fashion-MNIST) to HDF5 datasets 'images' and 'labels'");
    import_idx
        ->add_option("INPUT", import_args.inputs,
                     "A directory with train-/t10k-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz "
                     "(writes OUT/train.h5 and OUT/test.h5), or IMAGES LABELS (writes the file OUT)")
        ->required()
        ->expected(1, 2);
    import_idx->add_option("--out,-o", import_args.out, "Output directory (for DIR) or .h5 file")->required();
    std::vector<std::string> inspect_files;
    auto* inspect = data->add_subcommand("inspect", "Show the datasets, shapes, dtypes and chunking of HDF5 files");
    inspect->add_option("FILE", inspect_files, "HDF5 files")->required();

    auto* ckpt = app.add_subcommand("ckpt", "Checkpoint store tools");
    ckpt->require_subcommand(1);
    std::string ckpt_dir = "checkpoints";
    auto* ckpt_list = ckpt->add_subcommand("list", "List the versions in a checkpoint store");
    ckpt_list->add_option("--dir", ckpt_dir, "Checkpoint store directory (checkpoint.dir)")
        ->capture_default_str();

    auto* models = app.add_subcommand("models", "List the registered models (model.name)");

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      std::ostringstream quiet;
      const int code = runtime->is_main() ? app.exit(e) : app.exit(e, quiet, quiet);
      return code;
    }

    if (train->parsed()) run_train(*runtime, train_args);
    if (eval->parsed()) run_eval(*runtime, eval_args);
    if (import_idx->parsed()) run_import_idx(*runtime, import_args);
    if (inspect->parsed() && runtime->is_main()) {
      for (const auto& f : inspect_files) std::cout << data::inspect_hdf5(f);
    }
    if (ckpt_list->parsed()) run_ckpt_list(*runtime, ckpt_dir);
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
