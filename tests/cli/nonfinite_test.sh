#!/usr/bin/env bash
# The non-finite guard end to end at 2 ranks: a NaN in one float input sample of the HDF5 training file ends the run
# within seconds with one error line naming the step, the rank and the sample (no rank left hanging); with
# train.nonfinite = "skip" the run finishes and train/skipped_steps counts exactly that one step. Also: bf16 trains
# on the CPU (with one warning where the CPU has no bfloat16 arithmetic), fp16 is refused there where autocast
# cannot run it.
set -u
dptrain=$(realpath "$1")
torch_version=${2:?the LibTorch version dptrain was built with, as CMake found it}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
enter_scratch_dir

# 256 float32 samples whose class shows as a bright band; sample 37 holds one NaN pixel.
/usr/bin/python3 - <<'PY' || { echo "FAILED: python3 with numpy is needed to make the test data"; exit 1; }
import numpy as np
rng = np.random.default_rng(3)
labels = rng.integers(0, 10, 256)
x = rng.random((256, 28, 28), dtype=np.float32) * 0.3
for i, label in enumerate(labels):
    x[i, 2 * label:2 * label + 2, :] += 0.7
x[37, 5, 5] = np.nan
np.save("x.npy", x)
np.save("y.npy", labels)
PY
"$dptrain" data import-npy x.npy y.npy --out train.h5 > /dev/null || { echo "FAILED: import-npy"; exit 1; }
cat > config.toml <<'TOML'
[data]
train = "train.h5"
[train]
epochs = 1
batch_size = 16
[tracking]
sinks = ["jsonl"]
log_every = 1
[checkpoint]
enabled = false
TOML

start=$(date +%s)
expect_error "a NaN input sample stops every rank" \
  "step [1-8]: the loss was not finite on rank [01] of 2; non-finite inputs in sample 37 of train.h5" \
  "${mpirun[@]}" -np 2 "$dptrain" train config.toml
elapsed=$(($(date +%s) - start))
if [ "$elapsed" -le 60 ]; then ok "the error ends the run in ${elapsed} s"; else bad "the error took ${elapsed} s" ""; fi

output=$(timeout 120 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.nonfinite=skip 2>&1)
rc=$?
metrics=$(ls runs/*/metrics.jsonl 2>/dev/null | tail -1)
skipped=$(grep -o '"train/skipped_steps": *[0-9.]*' "$metrics" 2>/dev/null | tail -1 | grep -oE '[0-9.]+$')
if [ "$rc" -eq 0 ] && grep -q 'finished 8 steps' <<< "$output" && [[ "$skipped" =~ ^1(\.0)?$ ]]; then
  ok "train.nonfinite = skip finishes with train/skipped_steps = 1"
else
  bad "train.nonfinite = skip (exit $rc, train/skipped_steps = '$skipped')" "$output"
fi
if grep -q '^dptrain: warning: step [1-8] skipped (train.nonfinite = "skip"): the loss was not finite on rank(s) [01]$' \
     <<< "$output"; then ok "the skipped step is reported once"
else bad "the skipped step is reported once" "$output"; fi

# Mixed precision at 2 ranks on the CPU: bf16 trains (autocast), fp16 is refused at start where LibTorch's CPU
# autocast cannot run it (1.13), with one line naming the key.
output=$(timeout 300 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.precision=bf16 \
  --set train.nonfinite=skip --set train.max_steps=3 2>&1)
if [ $? -eq 0 ] && grep -q 'finished 3 steps' <<< "$output"; then ok "train.precision = bf16 on the CPU"
else bad "train.precision = bf16 on the CPU" "$output"; fi
# One warning (rank 0's) where the CPU has no bfloat16 arithmetic, none where it has.
warnings=$(grep -c '^dptrain: warning: train.precision = "bf16" on a CPU without AVX512-BF16 or AMX: .*11x slower' \
  <<< "$output")
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then expected=0; else expected=1; fi
if [ "$warnings" -eq "$expected" ]; then ok "bf16 on this CPU warns $expected time(s)"
else bad "bf16 on this CPU warned $warnings time(s), expected $expected" "$output"; fi
if [[ "$torch_version" == 1.* ]]; then
  expect_error "fp16 on the CPU is refused" 'set-up failed: .*train.precision = "fp16" on cpu: this LibTorch.s autocast cannot run it' \
    "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.precision=fp16
fi

finish nonfinite_test
