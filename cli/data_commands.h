// The `dptrain data` subcommands: import-idx, import-npy, inspect, verify.
#pragma once

#include <CLI/CLI.hpp>

#include "core/runtime.h"

namespace dpt::cli {

// Adds `data` and its subcommands to `app`; each runs (on the main rank only) when parsed.
void add_data_commands(CLI::App& app, const Runtime& runtime);

}  // namespace dpt::cli
