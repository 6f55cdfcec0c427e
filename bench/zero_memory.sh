#!/usr/bin/env bash
# ZeRO-1's memory and speed: the GPT decoder (6 layers, width 384, 6 heads, context 64: 10.8M parameters, Adam)
# trained STEPS steps of 8 sequences per rank at np 1, 2, 3 with ddp.zero = 0 and 1. Per run (zero_memory): the
# optimizer state and peak RSS per rank, samples/s; then each np's ddp.zero = 1 / ddp.zero = 0 ratios, measured in
# the same sweep. A Markdown table on stdout.
#   BUILD=build STEPS=12 bash bench/zero_memory.sh
set -euo pipefail
BUILD=${BUILD:-build}
STEPS=${STEPS:-12}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BUILD/cli/dptrain" data synth --out "$work/tokens.h5" --samples 512 --vocab 256 --context 64 > /dev/null
cat > "$work/config.toml" <<TOML
[data]
train = "$work/tokens.h5"
inputs = "inputs"
targets = "labels"
scale = 1.0
[model]
name = "gpt"
options = { layers = 6, width = 384, heads = 6, context = 64 }
[train]
optimizer = "adam"
batch_size = 8
epochs = 1000
max_steps = $STEPS
[checkpoint]
enabled = false
[tracking]
sinks = []
[run]
output_dir = "$work/runs"
TOML
rows=()
echo "| ranks | ddp.zero | optimizer state MiB/rank | peak RSS MiB/rank (max, min) | samples/s |"
echo "|---:|---:|---:|---:|---:|"
for ranks in 1 2 3; do
  for zero in 0 1; do
    row=$(mpirun --oversubscribe --bind-to none -np "$ranks" "$BUILD/bench/zero_memory" "$work/config.toml" \
          --set ddp.zero="$zero" | grep '^|')
    echo "$row"
    rows+=("$row")
  done
done
echo
echo "| ranks | optimizer state zero 1 / zero 0 | peak RSS (max) zero 1 / zero 0 | samples/s zero 1 / zero 0 |"
echo "|---:|---:|---:|---:|"
for i in 0 2 4; do
  awk -F'|' -v a="${rows[$i]}" -v b="${rows[$((i + 1))]}" 'BEGIN {
    split(a, x, "|"); split(b, y, "|");
    printf "| %d | %.3f | %.3f | %.3f |\n", x[2], y[4] / x[4], y[5] / x[5], y[6] / x[6] }'
done
