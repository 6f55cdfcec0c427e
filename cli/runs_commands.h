// `dptrain runs ...`: tools for runs already written to disk (sync an offline run to MLflow or W&B).
#pragma once

#include <CLI/CLI.hpp>

#include "core/runtime.h"

namespace dpt::cli {

// Adds `runs sync RUN_DIR --mlflow URL [--experiment NAME] | --wandb [--python PATH]` to `app`; the command runs from its parse callback
// (on the main rank) and throws dpt::Error when something is left unsent.
void add_runs_commands(CLI::App& app, const Runtime& runtime);

}  // namespace dpt::cli
