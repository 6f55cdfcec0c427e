#!/usr/bin/env bash
# The mlflow sink against a real MLflow tracking server (pinned in scripts/venv-requirements.txt, sqlite backend,
# 127.0.0.1, a free port): a run's metrics, params, tags, status, config and checkpoint manifest artifacts, and
# its checkpoint versions in the Model Registry with their aliases, read back through the REST API; the server
# killed mid-run and restarted with no step missing or duplicated and no checkpoint registered twice, also when
# the whole spool is replayed; `dptrain runs sync` of an offline run, NaN and Inf included; the MLflow run id in
# the checkpoint manifests and `dptrain ckpt lineage`.
# Usage: mlflow_test.sh DPTRAIN
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bash "$root/scripts/setup-venv.sh" || { echo "FAILED: scripts/setup-venv.sh"; exit 1; }
venv="$root/.venv"
work=$(mktemp -d)
server_pid=""
train_pid=""
source "$root/tests/cli/harness.sh"

# The server runs in its own session, so that stopping it by PID also stops its gunicorn workers.
start_server() {
  setsid "$venv/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/artifacts" \
    >> "$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 120); do
    "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$uri/health" 2> /dev/null && return 0
    kill -0 "$server_pid" 2> /dev/null || break
    sleep 0.5
  done
  echo "FAILED: MLflow server did not answer $uri/health within 60 s"; tail -20 "$work/server.log"
  return 1
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM -- "-$server_pid" 2> /dev/null
  for _ in $(seq 40); do kill -0 "$server_pid" 2> /dev/null || break; sleep 0.25; done
  kill -KILL -- "-$server_pid" 2> /dev/null
  wait "$server_pid" 2> /dev/null
  server_pid=""
}

cleanup() {
  [ -n "$train_pid" ] && kill "$train_pid" 2> /dev/null
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uri="http://127.0.0.1:$port"
tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
cat >> config.toml <<TOML
[tracking]
sinks = ["jsonl", "mlflow"]
log_every = 1
mlflow.uri = "$uri"
mlflow.experiment = "integration"
mlflow.registered_model = "integration-model"
[checkpoint]
dir = "ckpt1"
every_steps = 10
async = true
best_metric = "train/loss"
best_mode = "min"
TOML
start_server || exit 1
check() { "$venv/bin/python" "$here/mlflow_check.py" "$uri" "$@" 2>&1; }

# 1. A run logs every step's metrics, its params, tags, status, config.json and checkpoints.
output=$(timeout 120 "$dptrain" train config.toml 2>&1)
run_dir=$(ls -d runs/*/ | head -1)
result=$(check integration "$run_dir" --checkpoints=ckpt1 --model=integration-model)
if [ $? -eq 0 ]; then ok "run read back: $result"; else bad "run read back" "$output"$'\n'"$result"; fi
# The MLflow run's id, once the sink knows it, is in the manifests saved after that, and the lineage shows it.
mlflow_run=$("$venv/bin/python" - "$uri" "$(basename "$run_dir")" <<'PY'
import json, sys, urllib.request
def call(path, body=None):
    request = urllib.request.Request(sys.argv[1] + "/api/2.0/mlflow/" + path, json.dumps(body).encode() if body else None,
                                     {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))
experiment = call("experiments/get-by-name?experiment_name=integration")["experiment"]["experiment_id"]
runs = call("runs/search", {"experiment_ids": [experiment], "filter": f"tags.`dptrain.run_id` = '{sys.argv[2]}'"})
print(runs["runs"][0]["info"]["run_id"])
PY
)
recorded=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["state"]["tracking_runs"].get("mlflow"))' \
  "ckpt1/versions/$(ls ckpt1/versions | tail -1)/manifest.json")
lineage=$("$dptrain" ckpt lineage latest --dir ckpt1 2>&1)
if [ -n "$mlflow_run" ] && [ "$recorded" = "$mlflow_run" ] && grep -q "| mlflow run $mlflow_run" <<< "$lineage"; then
  ok "the MLflow run id in the manifest and the lineage"
else bad "the MLflow run id in the manifest ($recorded, MLflow: $mlflow_run)" "$lineage"; fi
# As if every acknowledgement had been lost in a crash: the whole spool is replayed, and still nothing is
# logged or registered twice, and no request is rejected. Its metric lines are regrouped 108 metrics a line, as
# a slow server leaves them: MLflow's SQL store refuses such a request of repeats, since its last 8 metrics do
# not name all the keys it holds (mlflow_sink.cpp, kMetricsPerRepeatSafeBatch).
"$venv/bin/python" - "$run_dir/mlflow-spool.jsonl" <<'PY' || bad "regrouping the spool"
import json, sys
entries, metrics = [], []
def regroup():
    entries.extend({"metrics": metrics[i:i + 108]} for i in range(0, len(metrics), 108))
    metrics.clear()
for line in open(sys.argv[1]):
    entry = json.loads(line)
    if "metrics" in entry:
        metrics += entry["metrics"]
    else:
        regroup()
        entries.append(entry)
regroup()
with open(sys.argv[1], "w") as spool:
    spool.writelines(json.dumps(entry) + "\n" for entry in entries)
PY
echo 0 > "$run_dir/mlflow-spool.acked"
output=$(timeout 60 "$dptrain" runs sync "$run_dir" --mlflow "$uri" 2>&1)
result=$(check integration "$run_dir" --checkpoints=ckpt1 --model=integration-model)
if [ $? -eq 0 ] && grep -q "nothing left" <<< "$output" && ! grep -q "rejected" <<< "$output"; then
  ok "the whole spool replayed: $result"
else bad "the whole spool replayed" "$output"$'\n'"$result"; fi

# 2. The server is killed mid-run and restarted: the sink spools meanwhile and replays; nothing lost or doubled.
# The trainer is paused (SIGSTOP) while the server stops and starts, so that it is mid-run on a machine of any speed.
rm -rf runs
"$dptrain" train config.toml --set train.epochs=12 --set checkpoint.dir=ckpt2 --set checkpoint.every_steps=50 \
  > train.log 2>&1 &  # no `timeout`: SIGSTOP must reach dptrain
train_pid=$!
lines() { cat runs/*/metrics.jsonl 2> /dev/null | wc -l; }
for _ in $(seq 600); do [ "$(lines)" -ge 20 ] && break; sleep 0.1; done
kill -STOP "$train_pid"
stop_server
killed_at=$(lines)
kill -CONT "$train_pid"
for _ in $(seq 600); do [ "$(lines)" -ge $((killed_at + 50)) ] && break; sleep 0.1; done
kill -STOP "$train_pid"
start_server || exit 1
kill -CONT "$train_pid"
for _ in $(seq 1200); do kill -0 "$train_pid" 2> /dev/null || break; sleep 0.25; done
kill "$train_pid" 2> /dev/null  # still running after 300 s: hung
wait "$train_pid"
train_rc=$?
train_pid=""
run_dir=$(ls -d runs/*/ | head -1)
check_ckpt2() { check integration "$run_dir" --checkpoints=ckpt2 --model=integration-model; }
result=$(check_ckpt2)
if [ $? -eq 0 ] && [ "$train_rc" -eq 0 ] && grep -q "spooled to" train.log && grep -q "answers again" train.log; then
  ok "server killed after $killed_at records and restarted: $result"
else
  bad "server killed and restarted (train exit $train_rc)" "$(grep -v '^step' train.log | tail -20)"$'\n'"$result"
fi
output=$(timeout 60 "$dptrain" runs sync "$run_dir" --mlflow "$uri" 2>&1)
result=$(check_ckpt2)
if [ $? -eq 0 ] && grep -q " 0 requests sent" <<< "$output"; then ok "runs sync again sends nothing"
else bad "runs sync again" "$output"$'\n'"$result"; fi

# 3. An offline run (no mlflow sink) with NaN and Inf in metrics.jsonl, sent later by `runs sync`.
offline=runs/20261127-000000-0ff11e
mkdir -p "$offline"
cat > "$offline/metrics.jsonl" <<'JSONL'
{"step":1,"epoch":0,"time":1764201600.5,"train/loss":"NaN","train/lr":0.001}
{"step":2,"epoch":0,"time":1764201601.5,"train/loss":"Infinity","train/lr":0.001}
{"step":3,"epoch":0,"time":1764201602.5,"train/loss":"-Infinity","train/lr":0.001}
{"step":4,"epoch":1,"time":1764201603.5,"train/loss":0.25,"eval/accuracy":0.5}
JSONL
output=$(timeout 60 "$dptrain" runs sync "$offline" --mlflow "$uri" --experiment offline 2>&1)
result=$(check offline "$offline" --no-params)
if [ $? -eq 0 ]; then ok "runs sync of metrics.jsonl with NaN/Inf: $result"
else bad "runs sync of metrics.jsonl" "$output"$'\n'"$result"; fi

# 4. With the server down, `runs sync` fails with a message and a non-zero exit, and sends it all later.
stop_server
unsent=runs/20261127-000000-0ff11f
mkdir -p "$unsent" && cp "$offline/metrics.jsonl" "$unsent/"
output=$(timeout 60 "$dptrain" runs sync "$unsent" --mlflow "$uri" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "unreachable" <<< "$output"; then ok "runs sync with the server down fails clearly"
else bad "runs sync with the server down (exit $rc)" "$output"; fi

finish mlflow
