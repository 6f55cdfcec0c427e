#!/usr/bin/env bash
# ddp_scaling: fashion_cnn training throughput of dptrain at np=1 and np=2 against baselines measured in the same
# run: PyTorch DDP np=2 (gloo), the no-communication bound (two independent np=1 dptrain processes at once) and a
# plain LibTorch loop (framework overhead at np=1). Batches of 64 per rank, Adam, 200 steps after 20 warm-up,
# one thread per rank. Takes a few minutes on a 2-core machine.
#   bash bench/ddp_scaling.sh            (BUILD=build-dir, DATA=train.h5, STEPS=200 override the defaults)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
data=${DATA:-datasets/fashion-mnist/train.h5}
steps=${STEPS:-200}
warmup=20
batch=64
python=/usr/bin/python3  # Debian's python3-torch; the python3 on PATH may lack torch

dptrain="$build/cli/dptrain"
for f in "$dptrain" "$build/bench/plain_loop"; do
  [ -x "$f" ] || { echo "ddp_scaling: $f is missing: cmake --build $build --target dptrain plain_loop" >&2; exit 1; }
done
if [ ! -f "$data" ]; then
  [ -d /usr/share/datasets/fashion-mnist ] || { echo "ddp_scaling: $data is missing and there is no IDX data to import: set DATA=train.h5" >&2; exit 1; }
  "$dptrain" data import-idx /usr/share/datasets/fashion-mnist --out "$(dirname "$data")"
fi
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

# Prints "samples/s data-wait-fraction data-wait-ms compute-ms exposed-comm-ms" over the intervals after the
# warm-up, from a run's metrics.jsonl (per-step times: the trainer's max over ranks; nan when it has none).
summarize() {
  "$python" - "$1" "$warmup" <<'PY'
import glob, json, sys
records = [json.loads(l) for f in glob.glob(sys.argv[1] + "/*/metrics.jsonl") for l in open(f)]
timed = [r for r in records if "train/samples_per_s" in r and r["step"] > int(sys.argv[2])]
assert timed, "no metrics after the warm-up in " + sys.argv[1]
# Equal samples per interval: the overall rate is the harmonic mean of the interval rates.
rate = len(timed) / sum(1.0 / r["train/samples_per_s"] for r in timed)
mean = lambda key, scale=1.0: sum(r.get(key, float("nan")) for r in timed) / len(timed) * scale
print(f"{rate:.1f} {mean('train/data_wait_fraction'):.4f} {mean('train/data_wait_s', 1e3):.2f} "
      f"{mean('train/compute_s', 1e3):.2f} {mean('train/comm_s', 1e3):.2f}")
PY
}

echo "ddp_scaling: fashion_cnn, batch $batch/rank, Adam, $steps steps after $warmup warm-up, 1 thread/rank," \
     "$(nproc --all) cores, $(basename "$data")"

"$build/bench/plain_loop" --steps "$steps" --warmup "$warmup" --batch "$batch" --threads 1 | tee "$work/plain.txt"
plain=$(grep -o '[0-9.]* samples/s' "$work/plain.txt" | cut -d' ' -f1)

train_args np1
"$dptrain" "${args[@]}" > "$work/np1.log"
read -r np1 np1_wait np1_steps < <(summarize "$work/np1")
echo "dptrain np=1: $np1 samples/s (data wait $np1_wait of the time)"

train_args solo_a
"$dptrain" "${args[@]}" > "$work/solo_a.log" &
solo_a_pid=$!
train_args solo_b
"$dptrain" "${args[@]}" > "$work/solo_b.log"
wait "$solo_a_pid"
read -r solo_a _ < <(summarize "$work/solo_a")
read -r solo_b _ < <(summarize "$work/solo_b")
bound=$("$python" -c "print(f'{$solo_a + $solo_b:.1f}')")
echo "no-communication bound (2 independent np=1 at once): $bound samples/s ($solo_a + $solo_b)"

train_args np2
mpirun -np 2 --bind-to none "$dptrain" "${args[@]}" > "$work/np2.log"
read -r np2 np2_wait np2_steps < <(summarize "$work/np2")
echo "dptrain np=2: $np2 samples/s (data wait $np2_wait of the time)"

"$python" bench/peers/pytorch_ddp.py --world 2 --steps "$steps" --warmup "$warmup" --batch "$batch" | tee "$work/ddp.txt"
ddp=$(grep -o '[0-9.]* samples/s' "$work/ddp.txt" | cut -d' ' -f1)

"$python" - "$plain" "$np1" "$bound" "$np2" "$ddp" "$np2_wait" $np1_steps $np2_steps <<'PY'
import sys
plain, np1, bound, np2, ddp, np2_wait = map(float, sys.argv[1:7])
steps = {"np=1": list(map(float, sys.argv[7:10])), "np=2": list(map(float, sys.argv[10:13]))}
batch = 64
def row(name, value, base, target):
    ratio = value / base
    verdict = "" if target is None else ("  met" if ratio >= target else f"  MISSED (target >= {target})")
    print(f"  {name:<44} {ratio:6.3f}{verdict}")
print(f"\n  {'configuration':<44} {'samples/s':>10}")
for name, value in [("plain LibTorch loop, 1 process", plain), ("dptrain np=1", np1),
                    ("no-communication bound (2 x np=1 at once)", bound), ("dptrain np=2", np2),
                    ("PyTorch DDP np=2 (gloo)", ddp)]:
    print(f"  {name:<44} {value:10.1f}")
print("\n  ratios")
row("dptrain np=1 / plain loop", np1, plain, 0.98)
row("dptrain np=2 / no-communication bound", np2, bound, 0.95)
row("dptrain np=2 / PyTorch DDP np=2", np2, ddp, 1.10)
row("dptrain np=2 / dptrain np=1 (scaling)", np2, np1, None)
row("PyTorch DDP np=2 / no-communication bound", ddp, bound, None)
# Step time per rank at np=2, split against the bound's step time (same contention, no communication).
step = 2 * batch / np2 * 1e3
compute = 2 * batch / bound * 1e3
wait = np2_wait * step
print(f"\n  dptrain np=2 step time per rank: {step:.1f} ms = compute {compute:.1f} ms (bound's step time)"
      f" + data wait {wait:.1f} ms + exposed communication and framework {max(0.0, step - compute - wait):.1f} ms")
print("  the trainer's own breakdown per step (max over ranks, ms):")
for name, (data_ms, compute_ms, comm_ms) in steps.items():
    print(f"    dptrain {name}: data wait {data_ms:.2f}, compute {compute_ms:.2f}, exposed communication {comm_ms:.2f}")
PY
