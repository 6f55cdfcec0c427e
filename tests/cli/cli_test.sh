#!/usr/bin/env bash
# End-to-end checks of the dptrain command under mpirun: a small run trains, logs, checkpoints and resumes;
# bad input gives one clear line and a non-zero exit; a killed rank ends the job. No case may hang.
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
enter_scratch_dir

tiny_data "$dptrain" && ok "import-idx" || { echo "FAILED: cannot make test data"; exit 1; }
/usr/bin/python3 "$here/make_idx.py" tiny-images.gz tiny-labels.gz 2
"$dptrain" data import-idx tiny-images.gz tiny-labels.gz --out tiny.h5 >/dev/null

cat >> config.toml <<TOML
[tracking]
log_every = 5
[checkpoint]
every_steps = 8
TOML

# A small run: trains, evaluates, writes metrics and checkpoints; a resume continues from the saved step.
output=$(timeout 300 "${mpirun[@]}" -np 2 "$dptrain" train config.toml 2>&1)
if [ $? -eq 0 ] && grep -q 'test accuracy' <<< "$output"; then ok "train on 2 ranks"; else bad "train on 2 ranks" "$output"; fi
metrics=$(ls runs/*/metrics.jsonl 2>/dev/null | head -1)
if [ -n "$metrics" ] && grep -q '"train/loss"' "$metrics" && grep -q '"train/samples_per_s"' "$metrics" \
   && grep -q '"eval/accuracy"' "$metrics" && grep -q '"epoch"' "$metrics"; then ok "metrics.jsonl fields"
else bad "metrics.jsonl fields" "$(cat "$metrics" 2>/dev/null)"; fi
listing=$("$dptrain" ckpt list 2>&1)
if grep -q 'v000001' <<< "$listing" && grep -q ' 20 ' <<< "$listing"; then ok "ckpt list"; else bad "ckpt list" "$listing"; fi
output=$(timeout 300 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.epochs=3 --resume latest 2>&1)
if [ $? -eq 0 ] && grep -q 'finished 30 steps' <<< "$output"; then ok "resume latest"; else bad "resume latest" "$output"; fi
output=$(timeout 120 "${mpirun[@]}" -np 2 "$dptrain" eval config.toml 2>&1)
if [ $? -eq 0 ] && grep -q 'accuracy' <<< "$output"; then ok "eval"; else bad "eval" "$output"; fi

# A rank with two threads warns when OpenBLAS's pthread build is loaded (install-deps.sh installs it beside the
# selected OpenMP build), and says nothing with the OpenMP build.
blas_run() { "$dptrain" train config.toml --set runtime.threads=2 --set train.max_steps=2 --set checkpoint.enabled=false 2>&1; }
output=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread blas_run)
if [ $? -eq 0 ] && grep -q "warning: OpenBLAS's pthread build is loaded; with 2 threads per rank" <<< "$output"; then
  ok "pthread OpenBLAS warned"; else bad "pthread OpenBLAS warned" "$output"; fi
output=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp blas_run)
if [ $? -eq 0 ] && ! grep -q "OpenBLAS" <<< "$output"; then ok "OpenMP OpenBLAS quiet"; else bad "OpenMP OpenBLAS quiet" "$output"; fi

# Data tools: .npy import, verify over a glob, inspect's digest (also in the checkpoint), mixed shapes refused.
/usr/bin/python3 -c "import numpy as np; np.save('x.npy', np.arange(240, dtype='f4').reshape(40, 2, 3));
np.save('y.npy', np.arange(40) % 3); np.save('wide.npy', np.zeros((40, 4), 'f4'))"
if "$dptrain" data import-npy x.npy y.npy --out parts/part-0.h5 >/dev/null \
   && "$dptrain" data import-npy x.npy y.npy --out parts/part-1.h5 >/dev/null; then ok "import-npy"
else bad "import-npy" ""; fi
output=$("$dptrain" data verify config.toml --set data.train="parts/part-*.h5" --set data.test="" 2>&1)
if [ $? -eq 0 ] && grep -q 'ok  2 file(s), 80 samples' <<< "$output"; then ok "verify a glob"; else bad "verify a glob" "$output"; fi
output=$("$dptrain" data inspect train.h5 2>&1)
digest=$(grep -oE '^sha256 [0-9a-f]{64}  train.h5' <<< "$output" | cut -d' ' -f2)
manifest=checkpoints/versions/v000001/manifest.json
if [ -n "$digest" ] && grep -q '"dataset_digest"' "$manifest" && grep -q "\"sha256\": \"$digest\"" "$manifest"; then
  ok "dataset digest in inspect and checkpoint"; else bad "dataset digest in inspect and checkpoint" "$output"; fi
"$dptrain" data import-npy wide.npy y.npy --out parts/part-2.h5 >/dev/null
expect_error "glob with mixed sample shapes" "parts/part-2.h5 has samples of shape \[4\] but in parts/part-0.h5" \
  "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set data.train="parts/part-*.h5"
expect_error "glob matching nothing" "data.train.*nothing-\*.h5.*matches no file" \
  "$dptrain" data verify config.toml --set data.train="nothing-*.h5"

# Bad input: one clear line, non-zero exit, no hang.
expect_error "typo in a config key" "unknown config key 'train.bach_size'.*did you mean 'train.batch_size'" \
  "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.bach_size=3
expect_error "wrong type" "'train.epochs'.*integer" "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.epochs=two
expect_error "missing dataset file" "missing.h5" "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set data.train=missing.h5
expect_error "missing config file" "cannot read config file 'nope.toml'" "$dptrain" train nope.toml
expect_error "more ranks than samples" "2 samples.*3 ranks|3 ranks.*2 samples" \
  "${mpirun[@]}" -np 3 "$dptrain" train config.toml --set data.train=tiny.h5
touch not-a-dir
expect_error "unwritable checkpoint directory" "not-a-dir/store" \
  "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set checkpoint.dir=not-a-dir/store
expect_error "corrupt dataset file" "not-a-dir" "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set data.train=not-a-dir

# start_endless_run LOG RANK ARGS...: a 2-rank run that trains until stopped, in the background ($job, a timeout
# around mpirun). Succeeds once rank 0 has logged a training step and $rank is the PID of the dptrain process that
# is rank RANK (a child of this job's mpirun, told by its OMPI_COMM_WORLD_RANK); $ranks holds both ranks' PIDs.
start_endless_run() {
  local log=$1 wanted=$2 launcher pid
  timeout 120 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.epochs=1000 --set checkpoint.enabled=false \
    "${@:3}" > "$log" 2>&1 &
  job=$!
  for _ in $(seq 1 60); do
    sleep 1
    launcher=$(pgrep -P "$job" -x mpirun) || continue
    ranks=$(pgrep -P "$launcher" -x dptrain) || continue
    rank=""
    for pid in $ranks; do
      tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$wanted" && rank=$pid
    done
    [ -n "$rank" ] && grep -qE '^step +[0-9]+/' "$log" && return 0
  done
  kill "$job" 2>/dev/null
  return 1
}

# A rank killed mid-run, after steps were logged: mpirun names the rank and the signal, and the job ends non-zero
# within 30 s with no rank left, instead of the surviving rank hanging in its next collective.
if start_endless_run killed.log 1; then
  kill -9 "$rank"
  killed_at=$SECONDS
  wait "$job"
  rc=$?
  took=$((SECONDS - killed_at))
  # A rank that exited may linger as a zombie until init reaps it; only a live one is left behind.
  left=$(for pid in $ranks; do state=$(ps -o stat= -p "$pid") && [[ $state != Z* ]] && echo "$pid"; done)
  outcome="exit $rc, ${took} s after the kill, ranks left: ${left:-none}"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$took" -le 30 ] && [ -z "$left" ] &&
    grep -q "process rank 1 with PID .* exited on signal 9 (Killed)" killed.log; then
    ok "killed rank ends the job ($outcome)"
  else bad "killed rank ends the job ($outcome)" "$(tail -20 killed.log)"; fi
else bad "killed rank ends the job (no step logged or no rank 1 within 60 s)" "$(tail -20 killed.log)"; fi

# A rank that hangs (stopped, so MPI cannot tell it from a slow one): the other rank's collective times out after
# ddp.timeout_s with a message naming the collective and the stopped rank, and the job ends.
start_endless_run hung.log 1 --set ddp.timeout_s=5
kill -STOP "$rank" 2>/dev/null
wait "$job"
rc=$?
kill -KILL "$rank" 2>/dev/null
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] &&
  grep -q "did not complete within 5 s: .*rank [01] \(has not reached it\|is in it too\)" hung.log; then
  ok "a hung rank ends the job with a timeout error (exit $rc)"
else bad "a hung rank ends the job with a timeout error (exit $rc)" "$(tail -20 hung.log)"; fi

# dptrain's shared-memory segments (all-reduce buffers, progress board): nothing is left in /dev/shm after the
# runs above (the killed and the hung ones included); with a /dev/shm too small for the all-reduce's (a private
# 12 MiB tmpfs, as in a container), a warning names the cause and the run trains through MPI instead.
leftovers=$(ls /dev/shm | grep '^dptrain-')
if [ -z "$leftovers" ]; then ok "nothing left in /dev/shm"; else bad "nothing left in /dev/shm" "$leftovers"; fi
output=$(timeout 120 unshare -m sh -c 'mount -t tmpfs -o size=12M tmpfs /dev/shm && exec "$@"' sh \
  "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set train.epochs=1 --set checkpoint.enabled=false 2>&1)
if [ $? -eq 0 ] && grep -q "all-reduces go through MPI.*cannot reserve 64 MiB in /dev/shm" <<< "$output" \
  && grep -q 'finished 10 steps' <<< "$output"; then
  ok "a full /dev/shm: warning, all-reduce through MPI"
else bad "a full /dev/shm: warning, all-reduce through MPI" "$output"; fi

finish cli
