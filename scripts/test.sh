#!/usr/bin/env bash
# Installs, builds (with tests and benchmarks) and runs every test suite through ctest.
# Extra arguments go to ctest, e.g. `-L unit` or `-LE mpi`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
