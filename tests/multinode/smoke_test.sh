#!/usr/bin/env bash
# 2 hosts x 2 ranks train over ssh-launched ranks: the job finishes, and every rank reports the host it runs on
# and that it shares it with one other rank (what the hierarchical all-reduce and shared memory rely on). A
# DPTRAIN_SOCKET_IFNAME that names no interface of the hosts ends the start at once, naming the interfaces there are.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh" "$1" 2

output=$(host_mpirun -np 4 "$dptrain" train config.toml "${small[@]}" --set train.max_steps=6 \
  --set runtime.all_ranks_print=true 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c 'finished 6 steps' <<< "$output")" -eq 4 ]; then ok "2 hosts x 2 ranks train"
else bad "2 hosts x 2 ranks train (exit $rc)" "$output"; fi
for rank in 0 1 2 3; do
  host=${HOSTS_NAMES[$((rank / 2))]}
  if grep -q "| rank $rank on $host (2 rank(s) on this host)$" <<< "$output"; then ok "rank $rank reports $host"
  else bad "rank $rank reports $host" "$(grep '^dptrain: run' <<< "$output")"; fi
done

start=$SECONDS
output=$(host_mpirun -x DPTRAIN_SOCKET_IFNAME=ib -np 4 "$dptrain" train config.toml "${small[@]}" \
  --set train.max_steps=6 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && [ $((SECONDS - start)) -le 60 ] &&
   grep -q "^dptrain: error: .*DPTRAIN_SOCKET_IFNAME=ib allows none of this host's interfaces that are up with an IPv4 address (eth0 $HOSTS_SUBNET\.1[01])" <<< "$output"; then
  ok "DPTRAIN_SOCKET_IFNAME naming no interface ends the start in $((SECONDS - start)) s with one line"
else bad "DPTRAIN_SOCKET_IFNAME naming no interface (exit $rc after $((SECONDS - start)) s)" "$output"; fi

finish multinode_smoke
