#!/usr/bin/env bash
# tracking_overhead: fashion_cnn step time at np=2 with every local metric sink on (console, jsonl, tensorboard,
# prometheus; log_every=10) against every sink off (tracking.sinks = []), measured in the same run. Rounds alternate
# the order of off and on. The step time of a mode is (wall(STEPS) - wall(SHORT)) / (STEPS - SHORT), so that
# start-up (MPI, data, model) cancels out; medians over the rounds. Batches of 64 per rank, one thread per rank.
#   bash bench/tracking_overhead.sh      (BUILD=build-dir, DATA=train.h5, STEPS=120, SHORT=20, ROUNDS=3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
data=${DATA:-datasets/fashion-mnist/train.h5}
steps=${STEPS:-120}
short=${SHORT:-20}
rounds=${ROUNDS:-3}
dptrain="$build/cli/dptrain"
[ -x "$dptrain" ] || { echo "tracking_overhead: $dptrain is missing: cmake --build $build --target dptrain" >&2; exit 1; }
if [ ! -f "$data" ]; then
  "$dptrain" data import-idx /usr/share/datasets/fashion-mnist --out "$(dirname "$data")"
fi
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMP_NUM_THREADS=1
work=$(mktemp -d /tmp/dptrain-tracking-overhead-XXXXXX)
trap 'rm -rf "$work"' EXIT
port=$((30000 + RANDOM % 20000))

# wall MODE N: seconds of one `dptrain train` of N steps at np=2.
wall() {
  local sinks='[]'
  [ "$1" = on ] && sinks='["console", "jsonl", "tensorboard", "prometheus"]'
  local start end
  start=$(date +%s.%N)
  mpirun -np 2 --bind-to none "$dptrain" train examples/fashion_mnist/config.toml --set "data.train=$data" \
    --set data.test= --set train.batch_size=64 --set train.epochs=1000 --set "train.max_steps=$2" \
    --set runtime.threads=1 --set checkpoint.enabled=false --set "tracking.sinks=$sinks" --set tracking.log_every=10 \
    --set "tracking.prometheus.port=$port" --set "run.output_dir=$work/$1" > "$work/log" 2>&1 \
    || { cat "$work/log" >&2; exit 1; }
  end=$(date +%s.%N)
  awk "BEGIN { print $end - $start }"
}

declare -A per_step
for round in $(seq "$rounds"); do
  modes=(off on)
  [ $((round % 2)) -eq 0 ] && modes=(on off)
  for mode in "${modes[@]}"; do
    long=$(wall "$mode" "$steps")
    brief=$(wall "$mode" "$short")
    per_step[$mode]+="$(awk "BEGIN { print ($long - $brief) / ($steps - $short) * 1000 }") "
    printf 'round %d %-3s: %d steps %.2f s, %d steps %.2f s\n' "$round" "$mode" "$steps" "$long" "$short" "$brief" >&2
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
off=$(echo "${per_step[off]}" | median)
on=$(echo "${per_step[on]}" | median)
echo
echo "fashion_cnn, np=2, batch 64/rank, $((steps - short)) steps measured, $rounds rounds (median)"
printf '%-46s %12s %8s\n' "sinks" "ms/step" "ratio"
printf '%-46s %12.2f %8.4f\n' "off (tracking.sinks = [])" "$off" 1
printf '%-46s %12.2f %8.4f\n' "console+jsonl+tensorboard+prometheus, every 10" "$on" "$(awk "BEGIN { print $on / $off }")"
echo "per-round ms/step  off: ${per_step[off]}"
echo "per-round ms/step  on:  ${per_step[on]}"
