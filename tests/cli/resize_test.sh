#!/usr/bin/env bash
# Resume at another world size through the dptrain command under mpirun: a checkpoint saved by N ranks resumes on
# M ranks. With the same global batch the run ends where a straight run at N ranks does (parameters to 1e-5; SGD,
# no dropout) and follows the same learning rate (warmup, then cosine); the banner names both shapes. A changed
# global batch is said plainly, the schedule goes on by samples, and train.max_steps' end moves with it.
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
enter_scratch_dir
compare=(/usr/bin/python3 "$here/compare_runs.py")

# 300 samples, 2 epochs: at a global batch of 48 each epoch is 6 steps and a short one of 12 (14 steps); the
# version saved after step 4 (sample 192) resumes.
tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
cat >> config.toml <<'TOML'
optimizer = "sgd"
lr = 0.05
lr_schedule = "cosine"
lr_warmup_epochs = 1.0
eval_every_epoch = false
[model]
name = "mlp"
[tracking]
sinks = ["jsonl"]
log_every = 1
[checkpoint]
every_steps = 4
TOML

# train_as NAME RANKSxBATCH ARGS...: one run into checkpoints NAME/, metrics runs-NAME/, output NAME.log.
train_as() {
  local name=$1 shape=$2
  timeout 300 "${mpirun[@]}" -np "${shape%x*}" "$dptrain" train config.toml --set train.batch_size="${shape#*x}" \
    --set checkpoint.dir="$name" --set run.output_dir="runs-$name" "${@:3}" > "$name.log" 2>&1
}

# describe RANKSxBATCH: the banner's words for it, e.g. "2 ranks x 24 (global batch 48)".
describe() {
  local ranks=${1%x*} batch=${1#*x}
  echo "$ranks rank$([ "$ranks" -gt 1 ] && echo s) x $batch (global batch $((ranks * batch)))"
}

# FROM TO [SETTINGS...]: saved by FROM (ranks x batch per rank), resumed on TO, both with the settings (--set
# values such as ddp.zero=1, the sharded optimizer state; from:KEY=V only for the saving run, to:KEY=V only for
# the resumed one: a case is one more line).
cases=(
  "2x24 3x16"
  "3x16 1x48"
  "1x48 2x24"
  "2x24 3x16 ddp.zero=1"
  "3x16 1x48 from:ddp.zero=1"
  "1x48 2x24 to:ddp.zero=1"
)
for i in "${!cases[@]}"; do
  read -r from to settings <<< "${cases[$i]}"
  sets=()
  resumed_sets=()
  for s in $settings; do
    case $s in
      from:*) sets+=(--set "${s#from:}") ;;
      to:*) resumed_sets+=(--set "${s#to:}") ;;
      *) sets+=(--set "$s"); resumed_sets+=(--set "$s") ;;
    esac
  done
  name="$from -> $to${settings:+ ($settings)}"
  if ! train_as "straight$i" "$from" "${sets[@]}"; then
    bad "$name: straight run" "$(tail -20 "straight$i.log")"
    continue
  fi
  if ! train_as "resized$i" "$to" "${resumed_sets[@]}" --resume "straight$i/versions/v000001"; then
    bad "$name: resumed run" "$(tail -20 "resized$i.log")"
    continue
  fi
  banner="saved by $(describe "$from"), now $(describe "$to")"
  if grep -qF "$banner" "resized$i.log" && grep -q 'finished 14 steps' "resized$i.log" \
     && ! grep -q 'global batch changes' "resized$i.log"; then ok "$name: banner and step count"
  else bad "$name: banner ($banner) and step count" "$(cat "resized$i.log")"; fi
  "$dptrain" ckpt export latest --dir "straight$i" --out "straight$i-model" > /dev/null
  "$dptrain" ckpt export latest --dir "resized$i" --out "resized$i-model" > /dev/null
  output=$("${compare[@]}" models "resized$i-model/model.safetensors" "straight$i-model/model.safetensors" 1e-5)
  if [ $? -eq 0 ]; then ok "$name: the parameters of a straight run ($output)"
  else bad "$name: the parameters of a straight run" "$output"; fi
  output=$("${compare[@]}" lr runs-resized$i/*/metrics.jsonl runs-straight$i/*/metrics.jsonl 10)
  if [ $? -eq 0 ]; then ok "$name: the learning rate of a straight run ($output)"
  else bad "$name: the learning rate of a straight run" "$output"; fi
done

# A changed global batch (2 x 24 -> 2 x 12): said plainly; at every sample position both runs logged, the
# learning rate is the straight run's (warmup and cosine count samples, and end at train.epochs).
if train_as halved 2x12 --resume straight0/versions/v000001; then
  output=$("${compare[@]}" lr runs-halved/*/metrics.jsonl runs-straight0/*/metrics.jsonl 8)
  if [ $? -eq 0 ] && grep -q 'the global batch changes from 48 to 24 samples per step' halved.log; then
    ok "a halved global batch: said, and the schedule goes on by samples ($output)"
  else bad "a halved global batch: said, and the schedule goes on by samples" "$output$(cat halved.log)"; fi
else bad "a halved global batch: resumed run" "$(tail -20 halved.log)"; fi

# With train.max_steps = 10 the end of the cosine is where the 10th step ends: after a resume at step 4 with half
# the global batch the 6 remaining steps end at sample 192 + 4 x 24 + 12 (the epoch's short step) + 24 = 324, and
# the rate falls at every step to 0 there (a schedule ending at 10 x 24 = 240 samples would sit at 0 from there on).
if train_as capped 2x24 --set train.max_steps=10 && train_as capped-halved 2x12 --set train.max_steps=10 \
     --resume capped/versions/v000001; then
  output=$("${compare[@]}" decreasing runs-capped-halved/*/metrics.jsonl 5)
  if [ $? -eq 0 ] && grep -q 'its 6 remaining steps end at sample 324' capped-halved.log; then
    ok "a halved global batch with train.max_steps: the cosine ends where the last step does"
  else bad "a halved global batch with train.max_steps: the cosine ends where the last step does" \
    "$output$(cat capped-halved.log)"; fi
else bad "a halved global batch with train.max_steps: runs" "$(tail -20 capped.log capped-halved.log)"; fi

finish resize
