#!/usr/bin/env bash
# ddp_scaling: fashion_cnn training throughput of dptrain at np=1 and np=2 against baselines measured in the same
# run: PyTorch DDP np=2 (gloo), the no-communication bound (two independent np=1 dptrain processes at once, just
# before and just after np=2), a plain LibTorch loop (framework overhead at np=1), and that loop at np=2 in lockstep
# (what synchronising alone costs here) and with an MPI_Allreduce per gradient (LibTorch's C++ distributed example).
# Batches of 64 per rank, Adam, 200 steps after 20 warm-up, one thread per rank, ROUNDS interleaved rounds, medians.
# Takes about 3.5 minutes a round on a 2-core machine.
#   bash bench/ddp_scaling.sh     (BUILD=build-dir, DATA=train.h5, STEPS=200, ROUNDS=3 override the defaults)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/bench/bench_inputs.sh"
build=${BUILD:-build}
steps=${STEPS:-200}
rounds=${ROUNDS:-3}
warmup=20
batch=64

dptrain="$build/cli/dptrain"
bench_require ddp_scaling "$dptrain" "$build/bench/plain_loop"
bench_training_data ddp_scaling "$data"
"$python" -c 'import torch' 2>/dev/null || { echo "ddp_scaling: $python has no torch: bash scripts/install-deps.sh" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMP_NUM_THREADS=1

work=$(mktemp -d /tmp/dptrain-ddp-scaling-XXXXXX)
trap 'rm -rf "$work"' EXIT

# Arguments of `dptrain train` writing metrics under $work/$1. dptrain's own metrics give the throughput per
# interval of `warmup` steps; the first interval is the warm-up.
train_args() {
  args=(train examples/fashion_mnist/config.toml --set "data.train=$data" --set data.test=
    --set "train.batch_size=$batch" --set train.optimizer=adam --set train.lr_schedule=constant
    --set "train.max_steps=$((steps + warmup))" --set train.epochs=1000 --set runtime.threads=1
    --set checkpoint.enabled=false --set 'tracking.sinks=["jsonl"]' --set "tracking.log_every=$warmup"
    --set "run.output_dir=$work/$1")
}

# Prints "samples/s data-wait-fraction data-wait-ms compute-ms exposed-comm-ms unsynchronised-samples/s" over the
# intervals after the warm-up, from a run's metrics.jsonl (per-step times: the trainer's max over ranks; nan when it
# has none). The last is what two ranks would reach if neither waited for the other: each at its own busy time per
# step (data wait + compute, the all-reduce's CPU work included), from the slowest and fastest rank's.
summarize() {
  "$python" - "$1" "$warmup" "$batch" <<'PY'
import glob, json, sys
records = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/metrics.jsonl") for l in open(f)]
timed = [r for r in records if "train/samples_per_s" in r and r["step"] > int(sys.argv[2])]
assert timed, "no metrics after the warm-up in " + sys.argv[1]
# Equal samples per interval: the overall rate is the harmonic mean of the interval rates.
rate = len(timed) / sum(1.0 / r["train/samples_per_s"] for r in timed)
mean = lambda key, scale=1.0: sum(r.get(key, float("nan")) for r in timed) / len(timed) * scale
unsynchronised = int(sys.argv[3]) * (1 / mean("train/step_time_min_s") + 1 / mean("train/step_time_max_s"))
print(f"{rate:.1f} {mean('train/data_wait_fraction'):.4f} {mean('train/data_wait_s', 1e3):.2f} "
      f"{mean('train/compute_s', 1e3):.2f} {mean('train/comm_s', 1e3):.2f} {unsynchronised:.1f}")
PY
}

echo "ddp_scaling: fashion_cnn, batch $batch/rank, Adam, $steps steps after $warmup warm-up, 1 thread/rank," \
     "$(nproc --all) cores, $(basename "$data"), $rounds round(s)"

# Every configuration runs once per round, in the same order, so that a slow patch of a shared VM hits all of
# them alike; the report takes each configuration's median over the rounds. One line per run goes to
# $results: "round configuration samples/s data-wait-fraction data-wait-ms compute-ms exposed-comm-ms
# unsynchronised-samples/s".
results="$work/results.txt"
record() {  # round configuration run-dir
  echo "$1 $2 $(summarize "$3")" >> "$results"
}
# Two independent np=1 processes at once (the no-communication bound), recorded as LABEL_a and LABEL_b. Each round
# runs a pair just before np=2 and one just after, and takes their mean as the bound: the VM's speed drifts within
# minutes (one pair alone has run 20 % slower than the same pair a few minutes later).
solo_pair() {  # round label
  local pid
  train_args "$2_a-$1"
  "$dptrain" "${args[@]}" > "$work/$2_a.log" &
  pid=$!
  train_args "$2_b-$1"
  "$dptrain" "${args[@]}" > "$work/$2_b.log"
  wait "$pid"
  record "$1" "$2_a" "$work/$2_a-$1"
  record "$1" "$2_b" "$work/$2_b-$1"
}
# One plain_loop run recorded as LABEL: `plain round label [launcher... -- [plain_loop options...]]`.
plain() {
  local round=$1 label=$2 launcher=() options=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launcher+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; options=("$@"); }
  "${launcher[@]}" "$build/bench/plain_loop" --steps "$steps" --warmup "$warmup" --batch "$batch" --threads 1 \
    "${options[@]}" > "$work/$label.txt"
  echo "$round $label $(grep -o '[0-9.]* samples/s' "$work/$label.txt" | cut -d' ' -f1) nan nan nan nan nan" \
    >> "$results"
}
for round in $(seq "$rounds"); do
  echo "round $round of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  plain "$round" plain
  # The plain loop at np=2: in lockstep with nothing exchanged, against two of it at once (both relative to the
  # same loop, so lockstep's own cost on this machine shows apart from any all-reduce), and with LibTorch's C++
  # distributed example's per-gradient MPI_Allreduce.
  plain "$round" plain_lockstep mpirun -np 2 --bind-to core -- --sync barrier
  plain "$round" plain_a &
  pid=$!
  plain "$round" plain_b
  wait "$pid"
  plain "$round" plain_allreduce mpirun -np 2 --bind-to core -- --sync allreduce

  train_args "np1-$round"
  "$dptrain" "${args[@]}" > "$work/np1.log"
  record "$round" np1 "$work/np1-$round"

  solo_pair "$round" solo
  train_args "np2-$round"
  mpirun -np 2 --bind-to none "$dptrain" "${args[@]}" > "$work/np2.log"
  record "$round" np2 "$work/np2-$round"
  solo_pair "$round" solo_after

  "$python" bench/peers/pytorch_ddp.py --world 2 --steps "$steps" --warmup "$warmup" --batch "$batch" \
    > "$work/ddp.txt"
  echo "$round ddp $(grep -o '[0-9.]* samples/s' "$work/ddp.txt" | cut -d' ' -f1) nan nan nan nan nan" >> "$results"
  grep "^$round " "$results" | sed 's/^/  /'
done

"$python" - "$results" "$batch" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)  # round -> configuration -> fields
for line in open(sys.argv[1]):
    round_, name, *fields = line.split()
    runs[round_][name] = list(map(float, fields))
batch = int(sys.argv[2])
for fields in runs.values():  # the bound: two independent processes at once, throughputs summed; mean of 2 pairs
    pairs = [fields[p + "_a"][0] + fields[p + "_b"][0] for p in ("solo", "solo_after")]
    fields["bound"] = [sum(pairs) / len(pairs)] + [float("nan")] * 5
    fields["plain_pair"] = [fields["plain_a"][0] + fields["plain_b"][0]] + [float("nan")] * 5
rate = lambda name: statistics.median(r[name][0] for r in runs.values())
def row(name, value, base, target):
    ratio = value / base
    verdict = "" if target is None else ("  met" if ratio >= target else f"  MISSED (target >= {target})")
    print(f"  {name:<50} {ratio:6.3f}{verdict}")
print(f"\n  {'configuration (median over ' + str(len(runs)) + ' rounds)':<50} {'samples/s':>10}")
names = [("plain", "plain LibTorch loop, 1 process"), ("np1", "dptrain np=1"),
         ("bound", "no-communication bound (2 x np=1 at once)"), ("np2", "dptrain np=2"),
         ("ddp", "PyTorch DDP np=2 (gloo)"), ("plain_pair", "2 x plain loop at once"),
         ("plain_lockstep", "plain loop np=2, lockstep, nothing exchanged"),
         ("plain_allreduce", "plain loop np=2, an MPI_Allreduce per gradient")]
for key, name in names:
    print(f"  {name:<50} {rate(key):10.1f}")
print("\n  ratios of the medians")
row("dptrain np=1 / plain loop", rate("np1"), rate("plain"), 0.98)
row("dptrain np=2 / no-communication bound", rate("np2"), rate("bound"), 0.95)
row("dptrain np=2 / PyTorch DDP np=2", rate("np2"), rate("ddp"), 1.10)
row("dptrain np=2 / dptrain np=1 (scaling)", rate("np2"), rate("np1"), None)
row("PyTorch DDP np=2 / no-communication bound", rate("ddp"), rate("bound"), None)
row("plain np=2 lockstep / 2 x plain loop", rate("plain_lockstep"), rate("plain_pair"), None)
row("plain np=2 all-reduce per gradient / 2 x plain", rate("plain_allreduce"), rate("plain_pair"), None)
print("\n  the same ratios round by round (np2/bound, np2/ddp, np1/plain, plain lockstep/pair, plain all-reduce/pair):")
ratio_pairs = (("np2", "bound"), ("np2", "ddp"), ("np1", "plain"), ("plain_lockstep", "plain_pair"),
               ("plain_allreduce", "plain_pair"))
for round_, r in runs.items():
    print(f"    round {round_}: " + "  ".join(f"{r[a][0] / r[b][0]:.3f}" for a, b in ratio_pairs))
# What synchronising adds to a step, in ms, over the same loop's two independent processes in the same round: the
# plain loop's and dptrain's steps differ in length (LibTorch's Adam against the fused step), their ratios do not
# compare, their costs per step do.
added = lambda synced, pair: statistics.median(2 * batch * (1 / r[synced][0] - 1 / r[pair][0]) * 1e3
                                               for r in runs.values())
print(f"\n  added to a step at np=2 over the same loop's two independent processes (ms, median over rounds):"
      f"\n    plain loop in lockstep, nothing exchanged {added('plain_lockstep', 'plain_pair'):.1f};"
      f" plain loop with an MPI_Allreduce per gradient {added('plain_allreduce', 'plain_pair'):.1f};"
      f" dptrain {added('np2', 'bound'):.1f}")
# Step time per rank at np=2, split against the bound's step time (same contention, no communication).
med = lambda name, i: statistics.median(r[name][i] for r in runs.values())
step = 2 * batch / rate("np2") * 1e3
compute = 2 * batch / rate("bound") * 1e3
wait = med("np2", 1) * step
print(f"\n  dptrain np=2 step time per rank: {step:.1f} ms = compute {compute:.1f} ms (bound's step time)"
      f" + data wait {wait:.1f} ms + exposed communication and framework {max(0.0, step - compute - wait):.1f} ms")
# The gap to the bound in two parts: the ranks waiting for each other (np=2 against the same two ranks at their own
# speeds, unsynchronised), and the all-reduce's CPU work and framework (those speeds against the bound).
unsync = med("np2", 5)
print(f"  dptrain np=2 if its ranks never waited for each other (each at its own busy time per step): {unsync:.1f}"
      f" samples/s;\n  waiting for the slower rank (and for the last bucket) costs {100 * (1 - rate('np2') / unsync):.1f} %"
      f" of that, the all-reduce's CPU work and the framework {100 * (1 - unsync / rate('bound')):.1f} % of the bound")
print("  the trainer's own breakdown per step (max over ranks, ms, medians):")
for name in ("np1", "solo_a", "np2"):
    print(f"    dptrain {name}: data wait {med(name, 2):.2f}, compute {med(name, 3):.2f},"
          f" exposed communication {med(name, 4):.2f}")
PY
