#!/usr/bin/env bash
# Checkpoints on the hosts' shared directory: a 2 hosts x 2 ranks job writes each version once (not once per
# host), and a resume launched from host 1, with its rank 0 there, continues from what the job launched on host 0
# saved, bit-identical to a run that went straight through.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh" "$1" 2

run=("${small[@]}" --set train.epochs=5 --set checkpoint.every_steps=4)
output=$(host_mpirun -np 4 "$dptrain" train config.toml "${run[@]}" --set train.max_steps=12 \
  --set checkpoint.dir=straight 2>&1) || bad "straight run of 12 steps" "$output"
versions=$(ls straight/versions 2> /dev/null | tr '\n' ' ')
if [ "$versions" = "v000001 v000002 v000003 " ]; then ok "one version per 4 steps in the shared store: $versions"
else bad "one version per 4 steps in the shared store" "$versions"; fi

output=$(host_mpirun -np 4 "$dptrain" train config.toml "${run[@]}" --set train.max_steps=8 \
  --set checkpoint.dir=resumed 2>&1) || bad "first 8 steps, launched on node0" "$output"
# Host 1 first in the hostfile: rank 0, which reads and writes the store, runs on node1.
printf '%s slots=2\n' "${HOSTS_NAMES[1]}" "${HOSTS_NAMES[0]}" > reversed-hostfile
output=$(HOSTS_LAUNCHER=1 HOSTS_HOSTFILE=reversed-hostfile host_mpirun -np 4 "$dptrain" train config.toml \
  "${run[@]}" --set train.max_steps=12 --set checkpoint.dir=resumed --resume latest 2>&1)
if [ $? -eq 0 ] && grep -q 'resuming from v000002 .*: step 8' <<< "$output" && grep -q '| rank 0 on node1 ' <<< "$output" \
  && grep -q 'finished 12 steps' <<< "$output"; then ok "resume launched from node1 continues at step 8"
else bad "resume launched from node1 continues at step 8" "$output"; fi
same_parameters "the resumed run is bit-identical to the straight one" resumed straight 0

finish multinode_shared_checkpoint
