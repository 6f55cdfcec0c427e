#!/usr/bin/env bash
# ddp.zero = 1 end to end: checkpoints hold the optimizer state whole, so a run saved with ZeRO-1 at 2 ranks resumes
# with ZeRO-1 at 3 ranks (the same global batch) and with ddp.zero = 0 at 2 ranks, and both end where a straight
# ddp.zero = 0 run ends (parameters and SGD momentum within 1e-5, by `dptrain ckpt diff`); `dptrain ckpt export`
# takes the ZeRO-1 checkpoint as any other.
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
enter_scratch_dir

tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
cat >> config.toml <<'TOML'
eval_every_epoch = false
optimizer = "sgd"
momentum = 0.9
lr = 0.05
[model]
name = "mlp"
[checkpoint]
every_steps = 0
TOML

# train NAME RANKS BATCH ZERO STEPS [ARGS...]: a run of global batch RANKS x BATCH = 48; its output in NAME.log.
train() {
  local name=$1 ranks=$2 batch=$3 zero=$4 steps=$5
  shift 5
  if timeout 300 "${mpirun[@]}" -np "$ranks" "$dptrain" train config.toml --set train.batch_size="$batch" \
       --set ddp.zero="$zero" --set train.max_steps="$steps" --set train.epochs=10 "$@" > "$name.log" 2>&1; then
    ok "$name"
  else
    bad "$name" "$(tail -20 "$name.log")"
  fi
}

# expect_same NAME A B: every model and optimizer tensor of versions A and B exists in both, within 1e-5.
expect_same() {
  local output worst
  output=$("$dptrain" ckpt diff "$2" "$3" 2>&1)
  worst=$(awk '/^  (model|optimizer)\// { if ($0 ~ /only in/) { print "missing"; exit } if ($NF + 0 > m) m = $NF + 0 }
               END { print m + 0 }' <<< "$output" | head -1)
  if [ -n "$worst" ] && [ "$worst" != "missing" ] && awk -v w="$worst" 'BEGIN { exit !(w < 1e-5) }'; then
    ok "$1 (largest difference $worst)"
  else
    bad "$1 (largest difference $worst)" "$output"
  fi
}

train "4 steps with ZeRO-1 on 2 ranks" 2 24 1 4
train "resumed with ZeRO-1 on 3 ranks" 3 16 1 8 --resume v000001
train "resumed with ddp.zero = 0 on 2 ranks" 2 24 0 8 --resume v000001
train "8 steps straight with ddp.zero = 0 on 2 ranks" 2 24 0 8
expect_same "ZeRO-1 at 3 ranks continues the ZeRO-1 run of 2 ranks" v000002 v000004
expect_same "ddp.zero = 0 continues the ZeRO-1 run" v000003 v000004

state=$("$dptrain" ckpt show v000001 2>&1)
if "$dptrain" ckpt export v000001 --out exported > export.log 2>&1 && [ -s exported/model.safetensors ]; then
  ok "ckpt export of a ZeRO-1 checkpoint"
else
  bad "ckpt export of a ZeRO-1 checkpoint" "$(cat export.log; echo "$state")"
fi

finish zero_test
