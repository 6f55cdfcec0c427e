# Sourced by the multi-node tests: the CLI tests' bookkeeping, N hosts (hosts.sh) and tiny training data in the
# hosts' shared directory, which becomes the current directory. Usage: source setup.sh DPTRAIN HOSTS.
set -u
dptrain=$(realpath "$1")
multinode_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$multinode_dir/../cli/harness.sh"
source "$multinode_dir/hosts.sh"
hosts_up "$2" || { echo "FAILED: cannot build $2 hosts (see the line above)"; exit 1; }
cd "$HOSTS_SHARED" || exit 1
tiny_checkpoint_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
# Small jobs: the mlp model, one thread per rank, a console line every 2 steps.
small=(--set model.name=mlp --set runtime.threads=1 --set tracking.sinks='["console","jsonl"]'
  --set tracking.log_every=2)

# same_parameters NAME DIR-A DIR-B RTOL: the latest checkpoints in two stores hold the same model parameters.
same_parameters() {
  local name=$1 out
  "$dptrain" ckpt export latest --dir "$2" --out "$2.export" > /dev/null &&
    "$dptrain" ckpt export latest --dir "$3" --out "$3.export" > /dev/null || { bad "$name (export failed)" ""; return; }
  if out=$(/usr/bin/python3 "$multinode_dir/compare_params.py" "$2.export" "$3.export" --rtol "$4" 2>&1); then
    ok "$name ($out)"
  else bad "$name" "$out"; fi
}

# host_processes I: the names of host I's dptrain and orted processes, one line each (empty: none left).
host_processes() {
  local pid state
  for pid in $(host_pids "$1"); do
    state=$(ps -o stat= -p "$pid" 2> /dev/null) && [[ $state != Z* ]] && grep -xE 'dptrain|orted' "/proc/$pid/comm"
  done
}
