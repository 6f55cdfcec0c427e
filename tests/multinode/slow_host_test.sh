#!/usr/bin/env bash
# A slow host (every process of host 1 capped to a tenth of a CPU) makes its rank a straggler: training still
# completes, and the straggler metrics say so: train/step_time_ratio well above 1 and train/step_time_max_rank
# naming host 1's rank. (A delayed link would be the other kind of slow host; this kernel may lack netem.)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh" "$1" 2

host_cpu_limit 1 10 || { bad "cap host 1's CPU" ""; finish multinode_slow_host; exit; }
output=$(host_mpirun -np 2 --map-by node "$dptrain" train config.toml "${small[@]}" --set train.max_steps=12 \
  --set train.batch_size=64 --set train.epochs=100 --set tracking.log_every=6 --set checkpoint.enabled=false 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && grep -q 'finished 12 steps' <<< "$output"; then ok "training completes with a slow host"
else bad "training completes with a slow host (exit $rc)" "$output"; fi
# The last logged interval (the first one includes start-up on both ranks).
last=$(/usr/bin/python3 -c '
import glob, json
rows = [json.loads(line) for line in open(glob.glob("runs/*/metrics.jsonl")[0])]
row = [r for r in rows if "train/step_time_ratio" in r][-1]
print(row["train/step_time_ratio"], int(row["train/step_time_max_rank"]))' 2>&1)
read -r ratio slowest <<< "$last"
if [ "${slowest:-}" = 1 ] && /usr/bin/python3 -c "import sys; sys.exit(not float('$ratio') > 1.5)" 2> /dev/null; then
  ok "the straggler metrics name rank 1 on node1 (step_time_ratio $ratio)"
else bad "the straggler metrics name rank 1 on node1" "$last"; fi

finish multinode_slow_host
