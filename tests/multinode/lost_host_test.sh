#!/usr/bin/env bash
# A host lost in the middle of training ends the job instead of hanging it: host 1's link is cut (`cut`) or all
# its processes are killed (`kill`). The ranks on host 0 end within ddp.timeout_s plus 8 s; mpirun ends non-zero
# within ddp.timeout_s plus 25 s (after a cut, the abort it sends to the lost host waits for TCP to give up: about
# 13 s with the hosts' tcp_retries2, see hosts.sh); no dptrain or orted process is left on host 0 when it returns,
# nor, within 60 s, on the cut-off host; the output names the lost host (after a cut: a dptrain error line naming
# the host and its ranks; after a kill, mpirun ends the job before any rank's timeout, and whichever of its two
# reports wins the race names the host: "lost communication with a remote daemon ... on node node1" when the
# daemon's link is noticed first, or ssh's "Connection to node1 closed" followed by "ORTE was unable to reliably
# start one or more daemons" when the daemon's ssh session ends first).
# Usage: lost_host_test.sh DPTRAIN cut|kill.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh" "$1" 2
how=$2
timeout_s=4
# The timeout, the 2 s the timed-out rank gives the other hosts to say where they are, MPI_Abort, and slack for
# this shared machine.
survivors_limit=$((timeout_s + 8))
limit=$((timeout_s + 25))

HOSTS_MPIRUN_TIMEOUT=120 host_mpirun -np 4 "$dptrain" train config.toml "${small[@]}" --set train.epochs=1000 \
  --set checkpoint.enabled=false --set ddp.timeout_s=$timeout_s > job.log 2>&1 &
job=$!
if ! wait_until 60 grep -qE '^step +[0-9]+/' job.log; then
  bad "training starts on 2 hosts x 2 ranks" "$(tail -20 job.log)"
  finish "multinode_lost_host_$how"
  exit
fi
case $how in
  cut) link_down 1 ;;
  kill) host_kill 1 ;;
esac
lost_at=$SECONDS
# survivors_gone: the ranks on node0 have ended (they are the ones a lost host could leave hanging).
survivors_gone() { ! host_processes 0 | grep -qx dptrain; }
if wait_until "$survivors_limit" survivors_gone; then
  ok "the ranks on node0 end $((SECONDS - lost_at)) s after host 1 was lost (limit $survivors_limit s)"
else bad "the ranks on node0 end within $survivors_limit s after host 1 was lost" "$(tail -30 job.log)"; fi
wait "$job"
rc=$?
took=$((SECONDS - lost_at))
left0=$(host_processes 0)
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$took" -le "$limit" ]; then
  ok "mpirun ends non-zero $took s after host 1 was lost (exit $rc, limit $limit s)"
else bad "mpirun ends non-zero within $limit s after host 1 was lost (exit $rc after $took s)" "$(tail -30 job.log)"; fi
if [ -z "$left0" ]; then ok "nothing left on node0 when mpirun returns"; else bad "nothing left on node0 when mpirun returns" "$left0"; fi
# The lost host's own processes notice by themselves (its daemon's connection to mpirun gives up).
lost_host_clear() { [ -z "$(host_processes 1)" ]; }
if wait_until 60 lost_host_clear; then ok "nothing left on node1 $((SECONDS - lost_at)) s after the loss"
else bad "nothing left on node1 60 s after mpirun returned" "$(ps -o pid,stat,etime,wchan:24,args -p "$(host_pids 1 | paste -sd,)" | cut -c1-160)"; fi

if [ "$how" = cut ]; then
  # One line with the host and its two ranks next to each other ("2, 3", "2-3", "2 and 3").
  if grep '^dptrain: error:' job.log | grep 'node1' | grep -qE '(^|[^0-9])2[^0-9]{1,6}3([^0-9]|$)'; then
    ok "a dptrain error line names node1 and ranks 2 and 3: $(grep '^dptrain: error:' job.log | grep -o 'cannot reach host node1[^:]*: ranks\? [0-9, and-]*' | head -1)"
  else bad "a dptrain error line names node1 and ranks 2 and 3" "$(grep -v '^\[node' job.log | tail -30)"; fi
elif grep -qE 'Peer host: +node1|on node node1|Connection to node1 closed' job.log; then
  ok "the output names node1: $(grep -oE 'Peer host: +node1|on node node1|Connection to node1 closed' job.log | head -1)"
else bad "the output names node1" "$(grep -v '^\[node' job.log | tail -30)"; fi

finish "multinode_lost_host_$how"
