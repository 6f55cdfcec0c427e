#!/usr/bin/env bash
# The wandb sink with the real wandb SDK (pinned in scripts/venv-requirements.txt) in offline mode, read back with
# the wandb package's own reader (wandb_check.py): one W&B run for 2 ranks, every step's metrics once, the config, tags, status, and each
# checkpoint version as a model artifact with its aliases; the driver process killed mid-run and restarted by the
# sink with no step lost or doubled; trainer and driver killed together and the rest delivered by
# `dptrain runs sync --wandb` (twice: nothing doubles); a Python without wandb, or none, is one clear error.
# Usage: wandb_test.sh DPTRAIN
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../cli/harness.sh"
project_venv
train_pid=""
enter_scratch_dir
trap '[ -n "$train_pid" ] && kill -KILL "$train_pid" 2> /dev/null; rm -rf "$work"' EXIT
# W&B's settings, cache and staging stay in the scratch directory, whatever the user's own settings say.
export WANDB_CONFIG_DIR="$work/wandb-config" WANDB_CACHE_DIR="$work/wandb-cache" WANDB_DATA_DIR="$work/wandb-data"

tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
cat >> config.toml <<'TOML'
eval_every_epoch = true
[model]
name = "mlp"
[tracking]
sinks = ["jsonl", "wandb"]
log_every = 1
tags = ["team=vision", "baseline"]
wandb.python = "VENV_PYTHON"
[checkpoint]
every_steps = 10
best_metric = "train/loss"
best_mode = "min"
TOML
sed -i "s|VENV_PYTHON|$venv/bin/python|" config.toml
check() { "$venv/bin/python" "$here/wandb_check.py" "$@" --tags baseline,team=vision 2>&1; }
driver_of() { pgrep -f "wandb-driver.py $1 --parent"; }
# A driver left delivering after dptrain exited finishes on its own; the checks wait for it.
no_driver() { ! pgrep -f "wandb-driver.py $1" > /dev/null; }
wait_driver() { wait_until 120 no_driver "$1" || echo "the driver of $1 is still running after 120 s"; }
spooled() { cat "$1"/wandb-spool.jsonl 2> /dev/null | wc -l; }
at_least_spooled() { [ "$(spooled "$1")" -ge "$2" ]; }
# The driver's W&B run has written part of its transaction log (W&B writes it in 32 KiB blocks, now and then).
half_written() { [ "$(cat "$1"/wandb/offline-run-*/*.wandb 2> /dev/null | wc -c)" -gt 32768 ]; }
# pause_half_written RUN_DIR: pauses the trainer after 40 spool lines, then waits for the driver to have written
# some of them, so that killing the driver now cuts its W&B run short.
pause_half_written() {
  wait_until 120 at_least_spooled "$1" 40 || bad "the trainer did not spool 40 lines" "$(cat train.log)"
  kill -STOP "$train_pid"
  wait_until 120 half_written "$1" || bad "the driver wrote no history" "$(cat "$1/wandb-driver.log")"
}
run_dir_of() { wait_until 30 bash -c "ls -d runs/*/ > /dev/null 2>&1" && ls -d runs/*/ | head -1 | sed 's|/$||'; }

# 1. A run of 2 ranks, one W&B run (rank 0's): every step, the config, tags, status, and its checkpoint versions
# as artifacts with their aliases.
output=$(timeout 180 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set checkpoint.dir=ckpt1 2>&1)
rc=$?
run_dir=$(run_dir_of)
wait_driver "$run_dir"
upload_hint="upload it with: wandb sync $run_dir/wandb/offline-run-\*"
result=$(check "$run_dir" ckpt1 --status FINISHED)
if [ $? -eq 0 ] && [ $rc -eq 0 ] && grep -q "$upload_hint" <<< "$output"; then
  ok "run read back: $result"
else bad "run read back (train exit $rc)" "$(grep -v '^step' <<< "$output")"$'\n'"$result"; fi

# 2. The driver is killed (SIGKILL) mid-run, its W&B run half written: the sink starts it again, and the new one
# logs the spool from where it was acknowledged; nothing is lost or doubled, and no run cut short is left for
# `wandb sync`. The trainer is paused meanwhile, so that the kill falls mid-run on a machine of any speed.
rm -rf runs
"$dptrain" train config.toml --set checkpoint.dir=ckpt2 --set train.epochs=6 > train.log 2>&1 &
train_pid=$!
run_dir=$(run_dir_of)
pause_half_written "$run_dir"
killed=$(driver_of "$run_dir")
killed_at=$(spooled "$run_dir")
kill -KILL "$killed"
kill -CONT "$train_pid"
wait_until 300 bash -c "! kill -0 $train_pid 2> /dev/null"
wait "$train_pid"
rc=$?
train_pid=""
wait_driver "$run_dir"
result=$(check "$run_dir" ckpt2 --status FINISHED)
if [ $? -eq 0 ] && [ $rc -eq 0 ] && grep -q "(pid $killed) was killed by signal 9; starting it again" train.log &&
   grep -q "was cut short; its entries are logged again" "$run_dir/wandb-driver.log"; then
  ok "driver killed after $killed_at spool lines and started again: $result"
else
  bad "driver killed and started again (train exit $rc)" "$(grep -v '^step' train.log)"$'\n'"$result"
fi

# 3. Trainer and driver are killed together: the spool keeps what the W&B run lacks, and `runs sync --wandb`
# delivers it (the run as FAILED: it never closed); syncing again delivers nothing twice.
rm -rf runs
"$dptrain" train config.toml --set checkpoint.dir=ckpt3 --set train.epochs=6 > train.log 2>&1 &
train_pid=$!
run_dir=$(run_dir_of)
pause_half_written "$run_dir"
kill -KILL "$(driver_of "$run_dir")" "$train_pid"
wait "$train_pid" 2> /dev/null
train_pid=""
sync_output=$(timeout 120 "$dptrain" runs sync "$run_dir" --wandb --python "$venv/bin/python" 2>&1)
rc=$?
result=$(check "$run_dir" ckpt3 --status FAILED --killed)
if [ $? -eq 0 ] && [ $rc -eq 0 ] && grep -q "nothing left" <<< "$sync_output"; then
  ok "runs sync --wandb after trainer and driver were killed: $result"
else bad "runs sync --wandb (exit $rc)" "$sync_output"$'\n'"$result"; fi
sync_output=$(timeout 120 "$dptrain" runs sync "$run_dir" --wandb --python "$venv/bin/python" 2>&1)
result=$(check "$run_dir" ckpt3 --status FAILED --killed)
if [ $? -eq 0 ] && grep -q "nothing left" <<< "$sync_output"; then ok "runs sync --wandb again doubles nothing"
else bad "runs sync --wandb again" "$sync_output"$'\n'"$result"; fi

# 4. Without the wandb package, or without the interpreter, training does not start: one line naming the key.
expect_error "python without wandb" "cannot import wandb.*set tracking\.wandb\.python" \
  "$dptrain" train config.toml --set tracking.wandb.python=/usr/bin/python3
expect_error "no such python" "cannot start the wandb sink's python '/nonexistent/python3'.*tracking\.wandb\.python" \
  "$dptrain" train config.toml --set tracking.wandb.python=/nonexistent/python3

finish wandb
