#!/usr/bin/env bash
# The MPI Operator's launch of k8s/mpijob, replayed on this machine: each pod of the MPIJob runs in its own host
# (tests/multinode/hosts.sh: its own network, hostname, /dev/shm) inside the image's root filesystem (podman image
# mount, a writable overlay per pod as a container runtime gives), with the manifest's command and environment plus
# what the v2beta1 controller adds (tests/k8s/mpijob_pods.py), the operator's ssh Secret at sshAuthMountPath,
# /etc/mpi/hostfile on the launcher, the ConfigMap at /etc/dptrain and a shared directory as the volume at /data.
# The workers' names resolve a few seconds late (the launcher must wait). The job trains, checkpoints, gets
# SIGTERM on every pod (as when Kubernetes deletes them), exits 75; new pods resume from the checkpoint
# (--resume latest) and finish.
#
#   operator_launch_test.sh DPTRAIN        (root; builds the image with scripts/build-image.sh, cached)
set -u
dptrain=${1:?usage: operator_launch_test.sh DPTRAIN}
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAILED: $*"; exit 1; }

[ -f "$root/tests/multinode/hosts.sh" ] || fail "tests/multinode/hosts.sh (the multi-host harness) is missing"
# shellcheck source=../multinode/hosts.sh
source "$root/tests/multinode/hosts.sh"
bash "$root/scripts/setup-venv.sh" || fail "scripts/setup-venv.sh"
work=$(mktemp -d /tmp/operator_launch_test.XXXXXX)
build_start=$SECONDS
bash "$root/scripts/build-image.sh" > "$work/build-image.log" 2>&1 ||
  fail "scripts/build-image.sh: $(tail -3 "$work/build-image.log")"
echo "image: $(tail -1 "$work/build-image.log") ($((SECONDS - build_start)) s)"
image=${DPTRAIN_IMAGE:-localhost/dptrain:cpu}
export CONTAINERS_CONF=$root/k8s/image/containers.conf
"$root/.venv/bin/kubectl" kustomize "$root/k8s/mpijob" > "$work/mpijob.yaml" || fail "kubectl kustomize k8s/mpijob"
"$root/.venv/bin/python" "$root/tests/k8s/mpijob_pods.py" "$work/mpijob.yaml" "$work" || fail "tests/k8s/mpijob_pods.py"
# shellcheck source=/dev/null
source "$work/pods.sh"
# The image is mounted before the hosts exist, so every host's mount namespace starts with it.
rootfs=$(podman image mount "$image") || fail "podman image mount $image"
cleanup() {
  hosts_down
  podman image unmount "$image" > /dev/null
  rm -rf "$work"
}
hosts_up $((workers + 1)) pod || { podman image unmount "$image" > /dev/null; fail "hosts_up"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# Host 0 is the launcher's node, host 1 + i worker i's; names resolve as the job's headless Service makes them.
pod_hosts=("$launcher_host" "${worker_hosts[@]}")
for i in "${!pod_hosts[@]}"; do
  printf '%s.%d %s.%s.%s.svc %s\n' "$HOSTS_SUBNET" $((10 + i)) "${pod_hosts[$i]}" "$job" "$namespace" "${pod_hosts[$i]}"
done > "$work/etc-hosts.all"
# The first job's workers' names are not in DNS yet (the operator's Service records come with running pods): the
# launcher must wait for them before mpirun. Lines are appended later, into the same file the pods mount.
head -1 "$work/etc-hosts.all" > "$work/etc-hosts"
# The operator's ssh Secret: one key pair (ECDSA, named id_rsa), mounted read-only, root-owned, group fsGroup.
mkdir -p "$work/ssh" "$work/mpi" "$work/volume"
ssh-keygen -q -t ecdsa -b 521 -N '' -f "$work/ssh/id_rsa" -C "$job" || fail "ssh-keygen"
cp "$work/ssh/id_rsa.pub" "$work/ssh/authorized_keys"
chown root:1000 "$work/ssh"/* && chmod 644 "$work/ssh"/*
cp "$work/hostfile" "$work/mpi/hostfile"
chown 1000:1000 "$work/volume"
mapfile -t image_env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" | grep .)

# pod_start HOST NAME ROLE CMD...: a pod NAME on host HOST (named pod_hosts[HOST]; its own writable layer over the
# image), CMD run as uid 1000 with the kubelet's environment (image, HOSTNAME, HOME) and the role's. Sets pod_pid
# (the pod's first process, which the kubelet signals) and pod_job (the background job that ends with its status).
pod_start() {
  local i=$1 name=$2 role=$3 dir="$work/pods/$2"
  shift 3
  mkdir -p "$dir/upper" "$dir/work" "$dir/root"
  local mounts="mount -t overlay overlay -o lowerdir=$rootfs,upperdir=$dir/upper,workdir=$dir/work $dir/root
    mount -t proc proc $dir/root/proc && mount --rbind /dev $dir/root/dev && mount -t tmpfs tmpfs $dir/root/tmp
    mount --rbind /sys $dir/root/sys
    mount --bind $work/etc-hosts $dir/root/etc/hosts && mount --bind $work/volume $dir/root/data
    mount --bind -o ro $work/config $dir/root/etc/dptrain && mount --bind -o ro $work/ssh $dir/root$ssh_path"
  [ "$role" = launcher ] && mounts+=" && mount --bind -o ro $work/mpi $dir/root/etc/mpi"
  host_run "$i" hostname "${pod_hosts[$i]}"
  host_run "$i" sh -ec "$mounts" || fail "mounts of pod $name"
  local env=("${image_env[@]}" "HOSTNAME=$(host_run "$i" hostname)" HOME=/home/dptrain)
  if [ "$role" = launcher ]; then env+=("${launcher_env[@]}"); else env+=("${worker_env[@]}"); fi
  host_run "$i" sh -c 'echo $$ > "$0" && exec "$@"' "$dir/pid" \
    chroot --userspec=1000:1000 --groups=1000 "$dir/root" /usr/bin/env -i -C /home/dptrain "${env[@]}" "$@" \
    > "$work/$name.log" 2>&1 &
  pod_job=$!
  local _
  for _ in $(seq 1 200); do [ -s "$dir/pid" ] || sleep 0.05; done
  [ -s "$dir/pid" ] || fail "pod $name did not start: $(tail -3 "$work/$name.log")"
  pod_pid=$(cat "$dir/pid")
}

# wait_exit JOB SECONDS: the background job's exit status, or 124 when it is still running after SECONDS.
wait_exit() {
  local _
  for _ in $(seq 1 $(($2 * 5))); do
    kill -0 "$1" 2> /dev/null || { wait "$1"; return; }
    sleep 0.2
  done
  return 124
}

# job_run ATTEMPT ARGS...: worker pods, then (WaitForWorkersReady: each answers on 2222) the launcher with ARGS
# after the manifest's command; sets launcher_pid, launcher_job, worker_pids, worker_jobs.
job_run() {
  local attempt=$1 i
  shift
  worker_pids=()
  worker_jobs=()
  for i in $(seq 0 $((workers - 1))); do
    pod_start $((i + 1)) "$attempt-${worker_hosts[$i]}" worker "${worker_cmd[@]}"
    worker_pids+=("$pod_pid")
    worker_jobs+=("$pod_job")
  done
  for i in $(seq 0 $((workers - 1))); do
    local ready="" _
    for _ in $(seq 1 100); do
      host_run 0 bash -c "exec 3<> /dev/tcp/$HOSTS_SUBNET.$((11 + i))/2222" 2> /dev/null && { ready=1; break; }
      sleep 0.2
    done
    [ -n "$ready" ] || fail "worker ${worker_hosts[$i]} never ready: $(tail -3 "$work/$attempt-${worker_hosts[$i]}.log")"
  done
  pod_start 0 "$attempt-$launcher_host" launcher "${launcher_cmd[@]}" "$@"
  launcher_pid=$pod_pid
  launcher_job=$pod_job
}

# The data import Job's command, then a short run of the main job: a checkpoint every 10 of 100 steps.
pod_start 1 import worker "${import_cmd[@]}"
wait_exit "$pod_job" 120 || fail "the data import Job's command: $(tail -3 "$work/import.log")"
short=(--set train.max_steps=100 --set checkpoint.every_steps=10 --set tracking.log_every=10 --set runtime.threads=1)
store="$work/volume/checkpoints"
start=$SECONDS

job_run 1 "${short[@]}"
sleep 3
pgrep -P "$launcher_pid" -x mpirun > /dev/null && fail "the launcher ran mpirun before the workers' names resolved"
kill -0 "$launcher_job" 2> /dev/null || fail "the launcher gave up on unresolved names: $(tail -3 "$work/1-$launcher_host.log")"
tail -n +2 "$work/etc-hosts.all" >> "$work/etc-hosts"
for _ in $(seq 1 600); do
  "$dptrain" ckpt show latest --dir "$store" > /dev/null 2>&1 && break
  kill -0 "$launcher_job" 2> /dev/null || fail "launcher exited before a checkpoint: $(tail -5 "$work/1-$launcher_host.log")"
  sleep 0.2
done
"$dptrain" ckpt show latest --dir "$store" > /dev/null 2>&1 || fail "no checkpoint within 120 s"
# mpirun runs with the cluster launch settings, the operator's ssh option kept beside the project's.
mpirun_pid=$(pgrep -P "$launcher_pid" -x mpirun) || fail "no mpirun under the launcher pod's first process"
operator_rsh_args=$(printf '%s\n' "${launcher_env[@]}" | sed -n 's/^OMPI_MCA_plm_rsh_args=//p' | tail -1)
while read -r name; do
  want=$(bash -c "source '$root/scripts/cluster-launch.env' && printf %s \"\$$name\"")
  [ "$name" = OMPI_MCA_plm_rsh_args ] && want="$operator_rsh_args $want"
  got=$(tr '\0' '\n' < "/proc/$mpirun_pid/environ" | sed -n "s/^$name=//p")
  [ "$got" = "$want" ] || fail "mpirun's $name is '$got', expected '$want' (scripts/cluster-launch.env)"
done < <(sed -nE 's/^export ([A-Za-z_][A-Za-z0-9_]*)=.*/\1/p' "$root/scripts/cluster-launch.env")
# Kubernetes deletes the pods: SIGTERM to each pod's first process, SIGKILL after the grace period.
kill -TERM "$launcher_pid" "${worker_pids[@]}"
wait_exit "$launcher_job" "$grace_s"
rc=$?
[ "$rc" -eq 75 ] || fail "launcher exited $rc after SIGTERM, expected 75: $(tail -5 "$work/1-$launcher_host.log")"
for job in "${worker_jobs[@]}"; do
  wait_exit "$job" 10 || fail "a worker pod outlived its ranks after SIGTERM (status $?)"
done
grep -h 'dptrain-k8s' "$work/1-$launcher_host.log"
saved=$("$dptrain" ckpt show latest --dir "$store" | grep -m1 -oE '"step": *[0-9]+' | grep -oE '[0-9]+$')
echo "attempt 1: SIGTERM -> exit 75 after saving step $saved ($((SECONDS - start)) s)"
[ "${saved:-0}" -gt 0 ] && [ "$saved" -lt 100 ] || fail "saved step '$saved' is not within the run"

# The launcher's Job makes a new pod, the operator new workers: the run resumes and finishes.
job_run 2 "${short[@]}"
wait_exit "$launcher_job" 300
rc=$?
[ "$rc" -eq 0 ] || fail "resumed launcher exited $rc: $(tail -5 "$work/2-$launcher_host.log")"
grep -q 'resume latest' "$work/2-$launcher_host.log" || fail "the second launcher did not resume: $(head -3 "$work/2-$launcher_host.log")"
final=$("$dptrain" ckpt show latest --dir "$store" | grep -m1 -oE '"step": *[0-9]+' | grep -oE '[0-9]+$')
[ "${final:-0}" -eq 100 ] || fail "the resumed run ended at step '$final', expected 100"
kill -TERM "${worker_pids[@]}"
for job in "${worker_jobs[@]}"; do wait_exit "$job" 10 || fail "a worker pod did not stop on SIGTERM"; done
echo "attempt 2: resumed from step $saved, finished at step $final ($((SECONDS - start)) s in all)"
echo "operator_launch_test: passed"
