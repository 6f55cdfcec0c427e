#!/usr/bin/env bash
# gpu_check: one prepared pass on one GPU machine (an H100 or H200; about 10 minutes): build dptrain against the CUDA
# LibTorch of a Python torch, check the NCCL backend at world size 1 and every CUDA kernel against its CPU path,
# time the kernels against the GPU's copy bandwidth and the fused optimizers against LibTorch's, train fashion_cnn
# for one epoch on the GPU in fp32 and in bf16 (test accuracy >= 0.88 each), run allreduce_perf over NCCL, and
# print one Markdown report (also written to $BUILD/gpu-report.md).
#
# Needs on that machine:
#   - a CUDA build of torch importable by $PYTHON (default: python3; e.g. PYTHON=.venv/bin/python after
#     `pip install torch` in a venv): CMAKE_PREFIX_PATH comes from torch.utils.cmake_prefix_path
#   - nvcc (CUDA toolkit, CUDACXX or /usr/local/cuda/bin/nvcc) and NCCL (beside CUDA or in NCCL_ROOT)
#   - the Debian packages of scripts/install-deps.sh (MPI, HDF5, toml++, CLI11, ...)
#   - Fashion-MNIST's four IDX files in $FASHION_MNIST (default /usr/share/datasets/fashion-mnist)
#   bash bench/gpu_check.sh             (BUILD=build-gpu)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-gpu}
python=${PYTHON:-python3}
fashion=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
need() { echo "gpu_check: $1" >&2; exit 1; }

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
  need "$python cannot import torch: install a CUDA build of torch (pip install torch) or set PYTHON="
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  need "torch sees no CUDA device: run this on a GPU machine with a CUDA build of torch"
[ -d "$fashion" ] || need "no Fashion-MNIST IDX files in $fashion: set FASHION_MNIST to their directory"
command -v nvidia-smi > /dev/null || need "nvidia-smi not found: is the NVIDIA driver installed?"
gpus=$(nvidia-smi -L | wc -l)
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDPTRAIN_WITH_CUDA=ON -DDPTRAIN_WITH_NCCL=ON -DDPTRAIN_BUILD_TESTS=ON -DDPTRAIN_BUILD_BENCH=ON > "$build.configure.log"
grep -E '^-- +(LibTorch|CUDA kernels|NCCL backend)' "$build.configure.log"
cmake --build "$build" --target cuda_kernels_test gpu_check dptrain allreduce_perf kernels_bench -j"$(nproc)"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

report=$build/gpu-report.md
{
  echo "# dptrain gpu_check on $gpus x $gpu_name ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "## Correctness: NCCL at world size 1, every CUDA kernel against its CPU path"
  echo
  echo '```'
} > "$report"
# Exit 77 is the test's "no GPU": here that is a failure too.
"$build/tests/unit/cuda_kernels_test" > "$build/cuda_kernels_test.out" 2>&1 ||
  { cat "$build/cuda_kernels_test.out"; need "a CUDA kernel does not match its CPU path (above)"; }
"$build/bench/gpu_check" > "$build/gpu_check.out" 2>&1 || { cat "$build/gpu_check.out"; need "a check failed (above)"; }
{
  grep -E '^\[( +OK|  FAILED|  PASSED) ' "$build/cuda_kernels_test.out"
  sed -n '/^## /,$!p' "$build/gpu_check.out"
  echo '```'
  sed -n '/^## /,$p' "$build/gpu_check.out"
} >> "$report"

# One epoch of the main job on the GPU at each precision; samples/s from the run's last metrics record.
data=$build/fashion-mnist
[ -f "$data/train.h5" ] || "$build/cli/dptrain" data import-idx "$fashion" --out "$data" > /dev/null
{
  echo
  echo "## fashion_cnn, one epoch on one GPU"
  echo
  echo "| precision | test accuracy | samples/s | wall |"
  echo "|---|---|---|---|"
} >> "$report"
failed=0
for precision in fp32 bf16; do
  out=$build/train-$precision
  rm -rf "$out"
  "$build/cli/dptrain" train "$root/examples/fashion_mnist/config.toml" --set train.epochs=1 \
    --set runtime.device=cuda --set train.precision="$precision" --set checkpoint.enabled=false \
    --set data.train="$data/train.h5" --set data.test="$data/test.h5" --set run.output_dir="$out" \
    --set 'tracking.sinks=["jsonl"]' > "$out.log" 2>&1 || { cat "$out.log"; need "training in $precision failed"; }
  accuracy=$(grep -oE 'test accuracy [0-9.]+' "$out.log" | grep -oE '[0-9.]+$')
  rate=$(grep -ohE '"train/samples_per_s": *[0-9.e+]+' "$out"/*/metrics.jsonl | tail -1 | grep -oE '[0-9.e+]+$')
  wall=$(grep -oE 'finished [0-9]+ steps in [^|]+' "$out.log" | sed 's/.* in //')
  echo "| $precision | $accuracy | $rate | $wall |" >> "$report"
  if ! "$python" -c "import sys; sys.exit(0 if float('$accuracy') >= 0.88 else 1)"; then
    echo "gpu_check: $precision test accuracy $accuracy is below 0.88" >&2
    failed=1
  fi
done

{
  echo
  echo "## allreduce_perf over NCCL, $gpus rank(s), one per GPU"
  echo
  echo '```'
  mpirun -np "$gpus" --bind-to none "$build/bench/allreduce_perf" --backend nccl
  echo '```'
  echo
  echo "## kernels_bench (Google Benchmark), CUDA rows"
  echo
  echo '```'
  "$build/bench/micro/kernels_bench" --benchmark_filter=cuda --benchmark_min_time=0.05
  echo '```'
} >> "$report" 2>&1
cat "$report"
exit "$failed"
