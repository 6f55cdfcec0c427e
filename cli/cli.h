// The `dptrain` command line (train, eval, data, ckpt, models) as a function, so that a program that
// registers its own models can offer the same commands.
#pragma once

namespace dpt::cli {

// Parses argv, runs the subcommand, and turns any error into one readable line and a non-zero exit code;
// with several ranks, no rank is left hanging (an error on one rank ends the job).
int run(int argc, char** argv);

}  // namespace dpt::cli
