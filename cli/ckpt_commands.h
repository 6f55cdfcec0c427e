// The `dptrain ckpt` subcommands: list, show, verify, diff, lineage, tag, export, gc.
#pragma once

#include <CLI/CLI.hpp>

#include "core/runtime.h"

namespace dpt::cli {

// Adds `ckpt` and its subcommands to `app`; each runs (on the main rank only) when parsed.
void add_ckpt_commands(CLI::App& app, const Runtime& runtime);

}  // namespace dpt::cli
