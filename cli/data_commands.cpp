// `dptrain data`: IDX, .npy and text import, synthetic datasets, HDF5 inspection with the dataset digest, and
// end-to-end verification.
#include "cli/data_commands.h"

#include <iostream>
#include <memory>

#include "core/check.h"
#include "core/config.h"
#include "data/data_files.h"
#include "data/dataset_digest.h"
#include "data/import_idx.h"
#include "data/import_npy.h"
#include "data/synthetic.h"
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
  data::SynthOptions synth;
  std::int64_t stride = 0;  // import-text: 0 = the context (windows that do not overlap)
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

  auto* synth = data->add_subcommand(
      "synth", "Write an HDF5 file of random samples ('inputs', 'labels'): images of a shape and class count, or "
               "token sequences of a vocabulary (for benchmarks and scaling studies)");
  synth->add_option("--out,-o", args->out, "Output .h5 file")->required();
  synth->add_option("--samples,-n", args->synth.samples, "Number of samples")->capture_default_str();
  synth->add_option("--shape", args->synth.shape, "Shape of one sample, e.g. 3,32,32")
      ->delimiter(',')
      ->capture_default_str();
  synth->add_option("--dtype", args->synth.dtype, "float32 (standard normal) or uint8 (0..255)")
      ->check(CLI::IsMember({"float32", "uint8"}))
      ->capture_default_str();
  synth->add_option("--classes", args->synth.classes, "Labels uniform in [0, classes)")->capture_default_str();
  synth->add_option("--vocab", args->synth.vocab,
                    "Token sequences instead: inputs and labels [N, context] uint8 in [0, vocab), labels the next "
                    "tokens (at most 256)");
  synth->add_option("--context", args->synth.context, "Tokens per sample with --vocab")->capture_default_str();
  synth->add_option("--seed", args->synth.seed, "Random seed (the same seed writes the same file)")
      ->capture_default_str();
  synth->callback(on_main([](const DataArgs& a) {
    data::write_synthetic(a.synth, a.out);
    std::cout << "wrote " << a.out << "\n";
  }));

  auto* text = data->add_subcommand(
      "import-text", "Turn text files into byte-level token sequences: 'inputs' [N, context] and 'labels' [N, "
                     "context] (the next byte of each position), uint8, vocabulary 256");
  text->add_option("FILES", args->files, "Text files, concatenated in this order")->required();
  text->add_option("--out,-o", args->out, "Output .h5 file")->required();
  text->add_option("--context", args->synth.context, "Tokens per sample")->capture_default_str();
  text->add_option("--stride", args->stride, "Bytes between the starts of two samples (default: the context)");
  text->footer("Train the gpt model on it with data.inputs = \"inputs\", data.targets = \"labels\",\n"
               "model.options.vocab = 256 and model.options.context equal to --context.");
  text->callback(on_main([](const DataArgs& a) {
    const auto n = data::import_text(a.files, a.out, a.synth.context, a.stride > 0 ? a.stride : a.synth.context);
    std::cout << "wrote " << a.out << " (" << n << " sequences of " << a.synth.context << " tokens)\n";
  }));
}

}  // namespace dpt::cli
