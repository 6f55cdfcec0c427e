// `dptrain data`: IDX and .npy import, HDF5 inspection with the dataset digest, and end-to-end verification.
#include "cli/data_commands.h"

#include <iostream>
#include <memory>

#include "core/check.h"
#include "core/config.h"
#include "data/data_files.h"
#include "data/dataset_digest.h"
#include "data/import_idx.h"
#include "data/import_npy.h"
#include "data/verify_dataset.h"
#include "train/train_options.h"

namespace dpt::cli {
namespace {

struct DataArgs {
  std::vector<std::string> inputs;
  std::string out;
  std::string inputs_name = "images";
  std::string targets_name = "labels";
  std::vector<std::string> files;
  std::string config;
  std::vector<std::string> overrides;
};

void import_idx(const DataArgs& args) {
  if (args.inputs.size() == 1) {
    for (const auto& path : data::import_idx_dir(args.inputs[0], args.out)) std::cout << "wrote " << path << "\n";
    return;
  }
  DPT_CHECK(args.inputs.size() == 2, "data import-idx takes DIR, or IMAGES LABELS");
  data::import_idx(args.inputs[0], args.inputs[1], args.out);
  std::cout << "wrote " << args.out << "\n";
}

void inspect(const DataArgs& args) {
  for (const auto& file : args.files) std::cout << data::inspect_hdf5(file);
  const nlohmann::json digest = data::dataset_digest(args.files);
  for (const auto& file : digest.at("files")) {
    std::cout << "sha256 " << file.at("sha256").get<std::string>() << "  " << file.at("path").get<std::string>()
              << "\n";
  }
  if (args.files.size() > 1) {
    std::cout << "sha256 " << digest.at("sha256").get<std::string>() << "  (all " << args.files.size()
              << " files, in this order)\n";
  }
}

void verify(const DataArgs& args) {
  const Config config = Config::load(train::config_schema(), args.config, args.overrides);
  const std::string& inputs = config.get_string("data.inputs");
  const std::string& targets = config.get_string("data.targets");
  for (const std::string split : {"train", "test"}) {
    const auto files = data::split_files(config, split);
    if (files.empty()) continue;
    std::cout << split << ":\n" << data::verify_dataset(files, inputs, targets);
  }
}

}  // namespace

void add_data_commands(CLI::App& app, const Runtime& runtime) {
  auto args = std::make_shared<DataArgs>();
  const auto on_main = [&runtime, args](void (*command)(const DataArgs&)) {
    return [&runtime, args, command] {
      if (runtime.is_main()) command(*args);
    };
  };
  auto* data = app.add_subcommand("data", "Dataset tools");
  data->require_subcommand(1);

  auto* idx = data->add_subcommand(
      "import-idx", "Convert gzip IDX files (MNIST, Fashion-MNIST) to HDF5 datasets 'images' and 'labels'");
  idx->add_option("INPUT", args->inputs,
                  "A directory with train-/t10k-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz "
                  "(writes OUT/train.h5 and OUT/test.h5), or IMAGES LABELS (writes the file OUT)")
      ->required()
      ->expected(1, 2);
  idx->add_option("--out,-o", args->out, "Output directory (for DIR) or .h5 file")->required();
  idx->callback(on_main(import_idx));

  auto* npy = data->add_subcommand(
      "import-npy", "Convert two .npy arrays (inputs [N, ...], integer targets [N]) to one chunked HDF5 file");
  npy->add_option("INPUTS", args->inputs, "INPUTS.npy TARGETS.npy (as written by numpy.save)")
      ->required()
      ->expected(2);
  npy->add_option("--out,-o", args->out, "Output .h5 file")->required();
  npy->add_option("--inputs-name", args->inputs_name, "Dataset name of the inputs (data.inputs)")
      ->capture_default_str();
  npy->add_option("--targets-name", args->targets_name, "Dataset name of the targets (data.targets)")
      ->capture_default_str();
  npy->footer("Chunks hold whole samples (about 1 MiB each), uncompressed, for fast shuffled reads.");
  npy->callback(on_main([](const DataArgs& a) {
    data::import_npy(a.inputs[0], a.inputs[1], a.out, a.inputs_name, a.targets_name);
    std::cout << "wrote " << a.out << "\n";
  }));

  auto* show = data->add_subcommand(
      "inspect", "Show the datasets, shapes, dtypes, chunking and sha256 of HDF5 files (the digest is cached "
                 "beside each file in .<name>.dptrain-digest.json)");
  show->add_option("FILE", args->files, "HDF5 files")->required();
  show->callback(on_main(inspect));

  auto* check = data->add_subcommand(
      "verify", "Read every sample of data.train and data.test of a config end to end and check them");
  check->add_option("CONFIG", args->config, "TOML config file")->required();
  check->add_option("--set", args->overrides, "Override a config key (repeatable)")->take_all();
  check->footer("Checks: files and datasets exist, inputs and targets have equal lengths, dtypes are supported,\n"
                "all files of a split have the same sample shape and dtype, every chunk decodes, float inputs are\n"
                "finite, labels are >= 0. Exits non-zero with the file, dataset and sample of the first problem.");
  check->callback(on_main(verify));
}

}  // namespace dpt::cli
