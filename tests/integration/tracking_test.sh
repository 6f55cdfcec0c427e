#!/usr/bin/env bash
# The tensorboard and prometheus sinks against the real backends: TensorBoard's own reader (pinned in
# scripts/venv-requirements.txt) reads back every scalar of a 2-rank run with its step and value; a real
# Prometheus (Debian's, on 127.0.0.1, stopped by PID) scrapes both ranks' /metrics of a live run and answers
# for the step counter and for every query of tracking/grafana/dptrain.json; NaN and +-Inf reach both.
# Usage: tracking_test.sh DPTRAIN TRACKING_FIXTURE
set -u
dptrain=$(realpath "$1")
fixture=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v prometheus > /dev/null || { echo "FAILED: no prometheus binary: run scripts/install-deps.sh"; exit 1; }
bash "$root/scripts/setup-venv.sh" || { echo "FAILED: scripts/setup-venv.sh"; exit 1; }
python="$root/.venv/bin/python"
check="$here/tracking_check.py"
work=$(mktemp -d)
pids=()
source "$root/tests/cli/harness.sh"

# Stops what this script started, by PID: TERM, up to 10 s, then KILL.
stop() {
  local pid=$1
  kill -TERM "$pid" 2> /dev/null || return 0
  for _ in $(seq 40); do kill -0 "$pid" 2> /dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
}
cleanup() {
  for pid in "${pids[@]}"; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe --bind-to none -np 2)

# Four free consecutive ports: rank 0, rank 1, the fixture, Prometheus.
port=$("$python" -c '
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000)
    try:
        for p in range(base, base + 4):
            socket.create_server(("127.0.0.1", p)).close()
        print(base); break
    except OSError:
        pass')
[ -n "$port" ] || { echo "FAILED: no 4 free consecutive ports on 127.0.0.1"; exit 1; }

tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
cat >> config.toml <<TOML
[checkpoint]
enabled = false
[tracking]
sinks = ["console", "jsonl", "tensorboard"]
log_every = 1
tags = ["suite=integration", "tracking"]
TOML

# TensorBoard: every scalar of metrics.jsonl, read back by TensorBoard's EventAccumulator.
output=$(timeout 300 "${mpirun[@]}" "$dptrain" train config.toml --set run.output_dir=tb 2>&1)
if [ $? -ne 0 ]; then bad "2-rank run with the tensorboard sink" "$output"
elif result=$("$python" "$check" tensorboard "$(ls -d tb/*/ | head -1)" 2>&1); then ok "tensorboard reader: $result"
else bad "tensorboard reader" "$result"; fi

# NaN and +-Inf from the fixture: TensorBoard reads them back; Prometheus scrapes them below.
"$fixture" fixture $((port + 2)) 300 > fixture.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready fixture.log && break; sleep 0.1; done
if result=$("$python" "$check" special fixture 2>&1); then ok "tensorboard reader, special values: $result"
else bad "tensorboard reader, special values" "$result$(cat fixture.log)"; fi

# Prometheus: a live 2-rank run (stopped by PID once checked), one /metrics per rank on port + rank.
timeout 300 "${mpirun[@]}" "$dptrain" train config.toml --set run.output_dir=prom --set train.epochs=100000 \
  --set 'tracking.sinks=["prometheus"]' --set tracking.prometheus.port=$port > train.log 2>&1 &
pids+=($!)
cat > prometheus.yml <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: dptrain
    static_configs:
      - targets: ["127.0.0.1:$port", "127.0.0.1:$((port + 1))", "127.0.0.1:$((port + 2))"]
YAML
prometheus --config.file=prometheus.yml --storage.tsdb.path=tsdb --web.listen-address=127.0.0.1:$((port + 3)) \
  > prometheus.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^dptrain: run ' train.log && break; sleep 0.5; done
run_id=$(sed -n 's/^dptrain: run \([^ ]*\) .*/\1/p' train.log | head -1)
if [ -z "$run_id" ]; then bad "live 2-rank run with the prometheus sink" "$(cat train.log)"
elif result=$("$python" "$check" prometheus "http://127.0.0.1:$((port + 3))" "$root/tracking/grafana/dptrain.json" \
                "$run_id" 2 2>&1); then ok "prometheus scrape and dashboard queries: $(echo $result)"
else bad "prometheus scrape and dashboard queries" "$result
$(tail -5 prometheus.log)
$(tail -5 train.log)"; fi

finish tracking
