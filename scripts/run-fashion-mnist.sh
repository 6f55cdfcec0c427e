#!/usr/bin/env bash
# The main job: install, build, import Fashion-MNIST into HDF5, train fashion_cnn on 2 ranks, print test accuracy.
# Extra arguments go to `dptrain train` (e.g. --set train.epochs=5). RANKS=4 changes the number of ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh dptrain
build/cli/dptrain data import-idx /usr/share/datasets/fashion-mnist --out datasets/fashion-mnist

ranks=${RANKS:-2}
mpi_flags=(--bind-to none)
if [ "$ranks" -gt "$(nproc)" ]; then mpi_flags+=(--oversubscribe); fi
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
time mpirun -np "$ranks" "${mpi_flags[@]}" build/cli/dptrain train examples/fashion_mnist/config.toml "$@"
