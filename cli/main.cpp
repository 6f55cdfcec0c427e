// The dptrain executable.
#include "cli/cli.h"

int main(int argc, char** argv) { return dpt::cli::run(argc, argv); }
