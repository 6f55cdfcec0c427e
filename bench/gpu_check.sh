#!/usr/bin/env bash
# gpu_check: on a GPU machine, in one go: build dptrain against the CUDA LibTorch of a Python torch, check the NCCL
# backend (world size 1) and the CUDA scale_copy and adam_step kernels against the CPU path, then run allreduce_perf over NCCL
# with one rank per visible GPU. Needs the Debian packages of scripts/install-deps.sh and a CUDA build of torch.
#   bash bench/gpu_check.sh             (BUILD=build-gpu and PYTHON=python3 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-gpu}
python=${PYTHON:-python3}

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
  echo "gpu_check: $python cannot import torch: install a CUDA build of torch or set PYTHON=" >&2; exit 1; }
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
  echo "gpu_check: torch sees no CUDA device: run this on a GPU machine with a CUDA build of torch" >&2; exit 1; }
gpus=$(nvidia-smi -L | wc -l)

generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDPTRAIN_WITH_CUDA=ON -DDPTRAIN_WITH_NCCL=ON -DDPTRAIN_BUILD_TESTS=OFF -DDPTRAIN_BUILD_BENCH=ON
cmake --build "$build" --target gpu_check allreduce_perf -j"$(nproc)"

echo "== correctness: NCCL backend at world size 1, CUDA scale_copy and adam_step vs CPU"
"$build/bench/gpu_check"

echo "== allreduce_perf over NCCL, $gpus rank(s), one per GPU"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mpirun -np "$gpus" --bind-to none "$build/bench/allreduce_perf" --backend nccl
