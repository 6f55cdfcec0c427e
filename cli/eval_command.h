// `dptrain eval`: a checkpoint on data.test, with per-class accuracy and the confusion matrix, recorded in a run
// directory of its own (eval.json, confusion.png) and through the config's metric sinks.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/runtime.h"
#include "distributed/make_backend.h"
#include "train/train_state.h"

namespace dpt::cli {

struct EvalArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string checkpoint = "latest";
  std::string store;  // "": checkpoint.dir
};

// " | test accuracy 0.9150 | test loss 0.2359", the accuracy only where the loss has one.
std::string format_eval(const train::EvalResult& eval, const std::string& what);

// Evaluates on every rank; rank 0 prints, writes <run.output_dir>/<eval run id>/ and records to the sinks.
void run_eval(Runtime& runtime, const Config& config, const distributed::Backends& backends, const EvalArgs& args);

}  // namespace dpt::cli
