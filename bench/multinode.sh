#!/usr/bin/env bash
# multinode: what crossing hosts costs. 2 hosts x 1 rank (namespace hosts of tests/multinode/hosts.sh, ranks
# launched over ssh, all-reduce over TCP through a bridge) against 1 host x 2 ranks (shared memory), measured in
# the same invocation: allreduce_perf's dptrain bus bandwidth at 1 MiB and 16 MiB, and fashion_cnn training
# samples/s (batch 64 per rank, Adam, STEPS steps after 10 warm-up, one thread per rank), unshaped and with the
# link shaped by tc to each RATE (and LINK_DELAY, which needs the kernel's netem qdisc; without it the rows say so
# and carry the rate alone). Root only; about 2 minutes on a 2-core machine.
#   bash bench/multinode.sh     (BUILD=build-dir, DATA=train.h5, STEPS=60, RATES="10gbit 1gbit", LINK_DELAY=50us)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/bench/bench_inputs.sh"
build=$(realpath "${BUILD:-build}")
steps=${STEPS:-60}
rates=${RATES:-10gbit 1gbit}
delay=${LINK_DELAY:-50us}
warmup=10
batch=64

dptrain="$build/cli/dptrain"
bench_require multinode "$dptrain" "$build/bench/allreduce_perf"
bench_training_data multinode "$data"
data=$(realpath "$data")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

source "$root/tests/multinode/hosts.sh"
HOSTS_SLOTS=2 hosts_up 2 || exit 1
cd "$HOSTS_SHARED"

# measure LABEL LAUNCH...: one table row: allreduce busbw (GB/s) at 1 MiB and 16 MiB, training samples/s.
measure() {
  local label=$1 perf rate
  shift
  perf=$("$@" "$build/bench/allreduce_perf" --min-bytes 1M --max-bytes 16M --rounds 5 2>&1) ||
    { echo "multinode: allreduce_perf failed ($label): $perf" >&2; exit 1; }
  # Columns: size count | mpi(us) algbw busbw | dptrain(us) algbw busbw | ratio check
  read -r bw1 bw16 <<< "$(awk '$1 == 1048576 { a = $10 } $1 == 16777216 { b = $10 } END { print a, b }' <<< "$perf")"
  rm -rf "runs-$label"
  "$@" "$dptrain" train "$root/examples/fashion_mnist/config.toml" --set "data.train=$data" --set data.test= \
    --set "train.batch_size=$batch" --set train.optimizer=adam --set "train.max_steps=$((steps + warmup))" \
    --set train.epochs=1000 --set runtime.threads=1 --set checkpoint.enabled=false \
    --set 'tracking.sinks=["jsonl"]' --set "tracking.log_every=$warmup" --set "run.output_dir=runs-$label" \
    > "train-$label.log" 2>&1 || { echo "multinode: training failed ($label):" >&2; tail -20 "train-$label.log" >&2; exit 1; }
  # Equal samples per interval: the overall rate is the harmonic mean of the intervals after the warm-up.
  rate=$("$python" - "runs-$label" "$warmup" <<'PY'
import glob, json, sys
rows = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/metrics.jsonl") for l in open(f)]
timed = [r for r in rows if "train/samples_per_s" in r and r["step"] > int(sys.argv[2])]
print(f"{len(timed) / sum(1.0 / r['train/samples_per_s'] for r in timed):.1f}")
PY
)
  rows+=("$label|$bw1|$bw16|$rate")
}

rows=()
no_delay=""
measure "1 host x 2 ranks" host_run 0 mpirun -np 2 --oversubscribe --bind-to none
two_hosts=(host_mpirun -np 2 --map-by node)
measure "2 hosts x 1 rank, unshaped" "${two_hosts[@]}"
for rate in $rates; do
  if link_shape 0 "$rate" "$delay" 2> /dev/null && link_shape 1 "$rate" "$delay" 2> /dev/null; then
    shape="$rate, $delay"
  else
    no_delay=$(link_shape 0 "$rate" "$delay" 2>&1 > /dev/null || true)
    link_shape 0 "$rate" && link_shape 1 "$rate"
    shape="$rate, no delay*"
  fi
  measure "2 hosts x 1 rank, $shape" "${two_hosts[@]}"
  link_unshape 0
  link_unshape 1
done

IFS='|' read -r _ base1 base16 base_rate <<< "${rows[0]}"
printf '# multinode: 2 hosts x 1 rank vs 1 host x 2 ranks (baseline, first row), same invocation\n'
printf '# busbw: allreduce_perf, dptrain backend, GB/s; samples/s: fashion_cnn, batch %d/rank, %d steps\n' "$batch" "$steps"
printf '%-36s %9s %9s %10s | %6s %6s %6s\n' "configuration" "1MiB" "16MiB" "samples/s" "x1MiB" "x16MiB" "xtrain"
for row in "${rows[@]}"; do
  IFS='|' read -r label bw1 bw16 rate <<< "$row"
  awk -v l="$label" -v a="$bw1" -v b="$bw16" -v r="$rate" -v a0="$base1" -v b0="$base16" -v r0="$base_rate" \
    'BEGIN { printf "%-36s %9s %9s %10s | %6.2f %6.2f %6.2f\n", l, a, b, r, a / a0, b / b0, r / r0 }'
done
[ -z "$no_delay" ] || echo "* the links carry the rate alone: ${no_delay#hosts.sh: }"
