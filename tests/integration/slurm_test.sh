#!/usr/bin/env bash
# Preemption under a real Slurm (Debian's slurmctld + slurmd + munged, private to this test, on 127.0.0.1): two
# tasks launched by `srun --mpi=pmix` save and exit 75 on `scancel --signal=USR1` and `--signal=TERM`, and the
# run resumes from the saved step; slurm/train_preemptible.sbatch requeues itself after the signal and its second
# attempt resumes and finishes.
# Usage: slurm_test.sh DPTRAIN
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
template="$here/../../slurm/train_preemptible.sbatch"
source "$here/../cli/harness.sh"
enter_scratch_dir
# munged wants every directory above its socket to be searchable by all.
chmod 755 "$work"

for tool in munged slurmctld slurmd srun sbatch scancel scontrol; do
  command -v "$tool" > /dev/null || { echo "FAILED: $tool is not installed; run scripts/install-deps.sh"; exit 1; }
done

daemons=()
# Stops what this script started, by PID only: first our own jobs, then slurmd, slurmctld and munged.
stop_slurm() {
  local jobs
  jobs=$(squeue -h -o %A 2> /dev/null)
  [ -n "$jobs" ] && scancel $jobs 2> /dev/null
  for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do
    kill -TERM "${daemons[i]}" 2> /dev/null
    for _ in $(seq 40); do kill -0 "${daemons[i]}" 2> /dev/null || break; sleep 0.25; done
    kill -KILL "${daemons[i]}" 2> /dev/null
    wait "${daemons[i]}" 2> /dev/null
  done
}
trap 'stop_slurm; rm -rf "$work"' EXIT

has_line() { grep -qE "$2" "$1" 2> /dev/null; }
job_state() { scontrol show job "$1" 2> /dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
job_in_state() { [ "$(job_state "$1")" = "$2" ]; }
latest_step() {
  "$dptrain" ckpt show latest --dir "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])'
}
# finished_steps LOG: N from the "finished N steps" line.
finished_steps() { grep -oE 'finished [0-9]+ steps' "$1" | grep -oE '[0-9]+'; }
run_id() { grep -oE 'dptrain: run [0-9a-f-]+' "$1" | head -1 | cut -d' ' -f3; }
dump() { for f in "$@"; do echo "== $f"; tail -15 "$f"; done; }

# --- A private Slurm: one node (this host, 2 CPUs), no cgroups, no accounting, state and spool in $work. -------
mkdir -p munge ctld spool
dd if=/dev/urandom of=munge/key bs=1024 count=1 2> /dev/null
chmod 400 munge/key
munged -F --key-file="$work/munge/key" --socket="$work/munge/socket" --pid-file="$work/munge/pid" \
  --seed-file="$work/munge/seed" > munged.log 2>&1 &
daemons+=($!)
wait_until 20 test -S munge/socket || { echo "FAILED: munged did not start"; dump munged.log; exit 1; }

read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
node=$(hostname -s)
export SLURM_CONF="$work/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=dptrain-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# We may be root in a container: the daemons run as the user who starts them.
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$work/munge/socket,cred_expire=5
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
# Look at pending jobs every second (default 60 s): a requeued job becomes eligible by time, not by an event.
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# The node is declared with 2 CPUs whatever the machine has.
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -c -f "$SLURM_CONF" > slurmctld.log 2>&1 &
daemons+=($!)
slurmd -D -f "$SLURM_CONF" > slurmd.log 2>&1 &
daemons+=($!)
node_idle() { [ "$(sinfo -h -o %t 2> /dev/null)" = idle ]; }
wait_until 60 node_idle || { echo "FAILED: the Slurm node did not become idle"; dump slurmctld.log slurmd.log; exit 1; }
echo "slurm: slurmctld on port $ctld_port, slurmd on $slurmd_port, node $node idle"

tiny_checkpoint_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
train=("$dptrain" train config.toml --set model.name=mlp --set train.epochs=1000)

# srun_preempted NAME SIGNAL [ARGS...]: 2 tasks under srun until a version newer than the current one exists,
# then `scancel --signal=SIGNAL` to the job's steps; leaves the exit status in $rc and the log in NAME.log.
srun_preempted() {
  local name=$1 signal=$2
  shift 2
  local before
  before=$(ls checkpoints/versions 2> /dev/null | tail -1)
  srun --mpi=pmix -n 2 -J "$name" "${train[@]}" "$@" > "$name.log" 2>&1 &
  local launcher=$!
  newer_version() { [ "$(ls checkpoints/versions 2> /dev/null | tail -1)" \> "$before" ]; }
  wait_until 120 newer_version
  scancel --signal="$signal" "$(squeue -h -n "$name" -o %A)"
  wait "$launcher"
  rc=$?
}

# 1. srun + scancel --signal=USR1: every task saves at the same step and exits 75.
srun_preempted usr1 USR1
saved=$(latest_step checkpoints)
if [ "$rc" -eq 75 ] && has_line usr1.log "stopped by a signal after saving" && [ -n "$saved" ] \
   && [ "$saved" = "$(finished_steps usr1.log)" ] && "$dptrain" ckpt verify > /dev/null; then
  ok "srun: scancel --signal=USR1 saves at step $saved and exits 75"
else bad "srun: scancel --signal=USR1 saves and exits 75 (exit $rc)" "$(dump usr1.log slurmd.log)"; fi

# 2. The run resumes under srun from that step (same run id) and scancel --signal=TERM stops it the same way.
srun_preempted term TERM --resume latest
resaved=$(latest_step checkpoints)
if [ "$rc" -eq 75 ] && [ "$(run_id term.log)" = "$(run_id usr1.log)" ] && [ "$resaved" -gt "$saved" ] \
   && [ "$resaved" = "$(finished_steps term.log)" ]; then
  ok "srun: the run resumes from step $saved; scancel --signal=TERM saves at step $resaved and exits 75"
else bad "srun: resume, then scancel --signal=TERM (exit $rc)" "$(dump term.log)"; fi

# 3. ... and finishes from there.
timeout 120 srun --mpi=pmix -n 2 "${train[@]}" --set train.max_steps=$((resaved + 3)) --resume latest \
  > finish.log 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ "$(finished_steps finish.log)" = "$((resaved + 3))" ] \
   && [ "$(run_id finish.log)" = "$(run_id usr1.log)" ]; then ok "srun: the resumed run finishes"
else bad "srun: the resumed run finishes (exit $rc)" "$(dump finish.log)"; fi

# 4. The job template: USR1, exit 75, `scontrol requeue`, second attempt resumes and finishes. The partition is
#    down while the job runs (running jobs go on), so the requeued job waits until train.max_steps is set.
export DPTRAIN="$dptrain" DPTRAIN_CHECKPOINT_DIR=job_checkpoints
job=$(sbatch --parsable -o job.out -D "$work" "$template" config.toml --set model.name=mlp --set train.epochs=1000)
wait_until 120 job_in_state "$job" RUNNING || true
scontrol update PartitionName=test State=DOWN
wait_until 120 test -e job_checkpoints/aliases/latest
# --full: the batch shell and srun get the signal too, which the template must survive (steps alone: 1. and 2.).
scancel --full --signal=USR1 "$job"
requeued() { job_in_state "$job" PENDING && scontrol show job "$job" | grep -q 'Restarts=1'; }
if wait_until 120 requeued; then
  job_saved=$(latest_step job_checkpoints)
  sed -i "s/^\[train\]$/[train]\nmax_steps = $((job_saved + 3))/" config.toml
  scontrol update PartitionName=test State=UP
  wait_until 120 job_in_state "$job" COMPLETED
  if has_line job.out "attempt 1, fresh start" && has_line job.out "exit code 75" \
     && has_line job.out "attempt 2, --resume latest" && has_line job.out "finished $((job_saved + 3)) steps" \
     && job_in_state "$job" COMPLETED; then
    ok "sbatch template: USR1 at step $job_saved, exit 75, requeued, resumed and finished"
  else bad "sbatch template: requeued job resumes and finishes ($(job_state "$job"))" "$(dump job.out)"; fi
else bad "sbatch template: exit 75 requeues the job ($(job_state "$job"))" "$(dump job.out slurmctld.log)"; fi

finish slurm
