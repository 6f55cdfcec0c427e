// The W&B driver's source and the project's venv python, as the build knew them (wandb_driver_source.cpp.in).
#pragma once

namespace dpt::tracking {

// tracking/wandb_driver.py, compiled into the library: every program that links dptrain::tracking, installed or
// not, runs the driver that matches its spool format, with no file of its own to find.
const char* wandb_driver_source();

// <source tree>/.venv/bin/python, where scripts/setup-venv.sh installs the pinned wandb (it may not exist).
const char* project_venv_python();

}  // namespace dpt::tracking
