# Sourced by the end-to-end test scripts: pass/fail bookkeeping, the error-line check, and tiny test data.
passed=0
failed=0
harness_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# mpirun as the tests run it: as root, more ranks than cores, threads free to use every core.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe --bind-to none)

# enter_scratch_dir: cd into a fresh temporary directory that is removed when the script exits.
enter_scratch_dir() {
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work" || exit 1
}

# project_venv: the project's .venv with the pinned PyPI tools (scripts/setup-venv.sh makes or updates it) in $venv;
# a test that needs them fails, not skips, when it cannot be made.
project_venv() {
  bash "$harness_dir/../../scripts/setup-venv.sh" || { echo "FAILED: scripts/setup-venv.sh"; exit 1; }
  venv=$(cd "$harness_dir/../.." && pwd)/.venv
}

ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; echo "$2" | sed 's/^/    | /'; failed=$((failed + 1)); }

# expect_error NAME REGEX COMMAND...: non-zero exit within 120 s and exactly one "dptrain: error:" line matching REGEX.
expect_error() {
  local name=$1 regex=$2
  shift 2
  local output rc
  output=$(timeout 120 "$@" 2>&1)
  rc=$?
  local lines
  lines=$(grep -c '^dptrain: error:' <<< "$output")
  if [ "$rc" -eq 124 ]; then bad "$name (hung: killed after 120 s)" "$output"
  elif [ "$rc" -eq 0 ]; then bad "$name (exit 0)" "$output"
  elif ! grep -qE "$regex" <<< "$output"; then bad "$name (message does not match /$regex/)" "$output"
  elif [ "$lines" -ne 1 ]; then bad "$name ($lines error lines, want 1)" "$output"
  else ok "$name"; grep "^dptrain: error:" <<< "$output" | sed "s/^/    /"; fi
}

# tiny_data DPTRAIN: makes train.h5 (300 random 28x28 samples, 10 classes) in the current directory and starts
# config.toml with [data] and [train] (2 epochs, batch 16); append more tables.
tiny_data() {
  /usr/bin/python3 "$harness_dir/make_idx.py" images.gz labels.gz 300 || return 1
  "$1" data import-idx images.gz labels.gz --out train.h5 > /dev/null || return 1
  cat > config.toml <<'TOML'
[data]
train = "train.h5"
test = "train.h5"
[train]
epochs = 2
batch_size = 16
TOML
}

# tiny_checkpoint_data DPTRAIN: tiny_data plus JSONL metrics and a checkpoint every 4 steps (no per-epoch eval).
tiny_checkpoint_data() {
  tiny_data "$1" || return 1
  cat >> config.toml <<'TOML'
eval_every_epoch = false
[tracking]
sinks = ["jsonl"]
[checkpoint]
every_steps = 4
TOML
}

# wait_until SECONDS COMMAND...: until COMMAND succeeds, polled every 0.1 s; fails after SECONDS.
wait_until() {
  local seconds=$1
  shift
  for _ in $(seq 1 $((seconds * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# finish NAME: the closing line ("NAME: N passed, N failed") and the exit status.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
