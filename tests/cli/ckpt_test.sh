#!/usr/bin/env bash
# End-to-end checks of checkpoints through the dptrain command: a signal under mpirun saves and exits 75, and
# the run resumes; a second job on the same store is refused; kill -9 during saves never leaves a version
# that fails verification; resume falls back past a damaged newest version; ckpt tag/diff/gc/verify; and an
# exported model gives the same test accuracy in PyTorch (examples/export_load.py) as in dptrain.
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
export_load="$here/../../examples/export_load.py"
source "$here/harness.sh"
enter_scratch_dir

# wait_for FILE REGEX SECONDS: until FILE has a line matching REGEX.
wait_for() { wait_until "$3" grep -qE "$2" "$1" 2>/dev/null; }

tiny_checkpoint_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
# A small model where saves need not be slow; fashion_cnn (13 MB of weights) where they should be.
small=(--set model.name=mlp)

# 1. SIGUSR1 to mpirun reaches every rank: they agree, save, and exit 75; a second job meanwhile is refused.
"${mpirun[@]}" -np 2 "$dptrain" train config.toml "${small[@]}" --set train.epochs=1000 --set checkpoint.async=true \
  > preempted.log 2>&1 &
job=$!
if wait_for checkpoints/aliases/latest . 120; then
  second=$(timeout 120 "$dptrain" train config.toml "${small[@]}" 2>&1)
  if [ $? -ne 0 ] && grep -q "is in use by another job" <<< "$second"; then ok "second job on the store is refused"
  else bad "second job on the store is refused" "$second"; fi
fi
kill -USR1 "$job"
wait "$job"
rc=$?
listing=$("$dptrain" ckpt verify 2>&1)
if [ "$rc" -eq 75 ] && grep -q "stopped by a signal after saving" preempted.log && [ $? -eq 0 ] \
   && grep -q '^ok' <<< "$listing"; then ok "SIGUSR1 under mpirun saves and exits 75"
else bad "SIGUSR1 under mpirun saves and exits 75 (exit $rc)" "$(tail -20 preempted.log; echo "$listing")"; fi
saved_step=$("$dptrain" ckpt show latest | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
output=$(timeout 300 "${mpirun[@]}" -np 2 "$dptrain" train config.toml "${small[@]}" --set train.epochs=1000 \
  --set train.max_steps=$((saved_step + 3)) --resume latest 2>&1)
if [ $? -eq 0 ] && grep -q "finished $((saved_step + 3)) steps" <<< "$output" && [ "$saved_step" -gt 0 ]; then
  ok "the preempted run resumes from step $saved_step"
else bad "the preempted run resumes from step $saved_step" "$output"; fi

# 1b. A second signal exits at once with 128 + signal, without the preemption save. Deterministic: the process is
#     stopped (here mostly in the middle of a save: every step saves fashion_cnn), both signals become pending,
#     and on SIGCONT both handlers run before any other code of the process, so nothing is published after the
#     stop; the store still verifies.
store=(--set checkpoint.dir=twice --set checkpoint.every_steps=1)
"$dptrain" train config.toml "${store[@]}" --set train.epochs=1000 > twice.log 2>&1 &
job=$!
wait_for twice/aliases/latest . 120
kill -STOP "$job"
before=$(ls twice/versions)
kill -USR1 "$job"
kill -TERM "$job"
kill -CONT "$job"
wait "$job"
rc=$?
verify=$("$dptrain" ckpt verify --dir twice 2>&1)
verify_rc=$?
if { [ "$rc" -eq $((128 + $(kill -l USR1))) ] || [ "$rc" -eq $((128 + $(kill -l TERM))) ]; } \
   && [ "$(ls twice/versions)" = "$before" ] && [ "$verify_rc" -eq 0 ] && grep -q '^ok' <<< "$verify" \
   && ! grep -q "stopped by a signal" twice.log; then
  ok "a second signal exits at once (exit $rc), nothing published after it, the store verifies"
else bad "a second signal exits at once (exit $rc)" "$(tail -5 twice.log; echo "$before"; ls twice/versions; echo "$verify")"; fi

# 2. kill -9 at random moments while every step saves (sync and async, with retention): every listed version
#    verifies afterwards, and the store still resumes.
rm -rf checkpoints
RANDOM=7
for trial in $(seq 1 8); do
  async=$([ $((trial % 2)) -eq 0 ] && echo true || echo false)
  resume=()
  [ -d checkpoints/versions ] && [ -n "$(ls checkpoints/versions)" ] && resume=(--resume latest)
  "$dptrain" train config.toml --set train.epochs=1000 --set checkpoint.every_steps=1 --set checkpoint.keep_last=2 \
    --set checkpoint.async=$async "${resume[@]}" > "trial$trial.log" 2>&1 &
  victim=$!
  # The first trial lets one version appear; then kills land anywhere in the save-dominated steps.
  if [ "$trial" -eq 1 ]; then wait_for checkpoints/aliases/latest . 60; else wait_for "trial$trial.log" "dptrain: run" 60; fi
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  kill -9 "$victim"
  wait "$victim" 2>/dev/null
done
verify=$("$dptrain" ckpt verify 2>&1)
verify_rc=$?
versions=$(grep -c '^ok' <<< "$verify")
if [ "$verify_rc" -eq 0 ] && [ "$versions" -ge 1 ]; then ok "kill -9 during saves: all $versions listed versions verify"
else bad "kill -9 during saves leaves a consistent store" "$verify"; fi
output=$(timeout 120 "$dptrain" train config.toml --set train.max_steps=1 --set train.epochs=1000 --resume latest 2>&1)
if [ $? -eq 0 ]; then ok "resume after kill -9"; else bad "resume after kill -9" "$output"; fi

# 3. A damaged newest version: verify names it, resume from latest skips it (one line) and uses the previous one.
newest=$(ls checkpoints/versions | tail -1)
blob=$(/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print([f["sha256"] for f in m["files"] if f["name"]=="model.safetensors"][0])' \
  "checkpoints/versions/$newest/manifest.json")
printf 'garbage' | dd of="checkpoints/blobs/sha256/$blob" bs=1 seek=100 conv=notrunc 2>/dev/null
verify=$("$dptrain" ckpt verify 2>&1)
if [ $? -ne 0 ] && grep -q "DAMAGED  $newest" <<< "$verify"; then ok "verify reports the damaged version"
else bad "verify reports the damaged version" "$verify"; fi
output=$(timeout 120 "$dptrain" train config.toml --set train.max_steps=1 --set train.epochs=1000 --resume latest 2>&1)
if [ $? -eq 0 ] && [ "$(grep -c "skipping a damaged checkpoint: checkpoint $newest" <<< "$output")" -eq 1 ]; then
  ok "resume latest falls back past the damaged version"
else bad "resume latest falls back past the damaged version" "$output"; fi

# 4. tag, diff and gc: a tagged version survives gc; diff shows what changed.
rm -rf checkpoints
"$dptrain" train config.toml "${small[@]}" --set train.max_steps=12 >/dev/null 2>&1
"$dptrain" ckpt tag v1 first >/dev/null
gc=$("$dptrain" ckpt gc --keep-last 1 2>&1)
listing=$("$dptrain" ckpt list 2>&1)
if grep -q "removed 1 version(s) v000002" <<< "$gc" && grep -q "v000001.*first" <<< "$listing" \
   && grep -q "v000003.*latest" <<< "$listing"; then ok "gc keeps tagged and latest versions"
else bad "gc keeps tagged and latest versions" "$gc"$'\n'"$listing"; fi
diff_out=$("$dptrain" ckpt diff first latest 2>&1)
if grep -q "step: 4 -> 12" <<< "$diff_out" && grep -q "model/fc2.weight" <<< "$diff_out"; then ok "ckpt diff"
else bad "ckpt diff" "$diff_out"; fi

# 5. Export: PyTorch reproduces dptrain's accuracy of a barely trained model (so not every answer is right).
rm -rf checkpoints
"$dptrain" train config.toml --set train.max_steps=3 >/dev/null 2>&1
cpp=$("$dptrain" eval config.toml 2>&1 | grep -oE 'accuracy [0-9.]+')
"$dptrain" ckpt export latest --out exported >/dev/null
python=$(/usr/bin/python3 "$export_load" exported --test train.h5 2>&1)
if [ -n "$cpp" ] && grep -q "$cpp" <<< "$python" && ! grep -q "accuracy 1.0000" <<< "$python"; then
  ok "exported model in PyTorch: $cpp as in dptrain"
else bad "exported model in PyTorch matches dptrain ($cpp)" "$python"; fi

finish ckpt
