#!/usr/bin/env bash
# reducer_loop_test.sh DPTRAIN_REDUCER_LOOP: the user-written loop of examples/reducer_loop at np=2 ends with
# bit-identical parameters on both ranks, changed by training, and a lower loss.
source "$(dirname "$0")/../cli/harness.sh"
enter_scratch_dir

output=$(timeout 240 "${mpirun[@]}" -np 2 "$1" 60 2>&1)
rc=$?
# "reducer_loop: rank R of 2 | 60 steps | loss FIRST -> LAST | parameters INITIAL -> FINAL", rank 0's line first.
lines=$(grep '^reducer_loop: rank [01] of 2 ' <<< "$output" | sort)
fields=$(awk '{printf "%s %s %s %s ", $11, $13, $16, $18}' <<< "$lines")
read -r first0 last0 initial0 final0 first1 last1 initial1 final1 <<< "$fields"
if [ "$rc" -ne 0 ] || [ "$(wc -l <<< "$lines")" -ne 2 ] || [ -z "$final1" ]; then
  bad "both ranks finish and report (exit $rc)" "$output"
else
  ok "both ranks finish and report"
  if [ "$initial0" = "$initial1" ]; then ok "equal parameters after broadcast_from_root ($initial0)"
  else bad "equal parameters after broadcast_from_root" "$lines"; fi
  if [ "$final0" = "$final1" ]; then ok "bit-identical final parameters ($final0)"
  else bad "bit-identical final parameters" "$lines"; fi
  if [ "$final0" != "$initial0" ]; then ok "training changed the parameters"
  else bad "training changed the parameters" "$lines"; fi
  if awk -v a="$first0" -v b="$last0" -v c="$first1" -v d="$last1" 'BEGIN { exit !(b < a / 2 && d < c / 2) }'; then
    ok "the loss fell by more than half on each rank ($first0 -> $last0, $first1 -> $last1)"
  else bad "the loss fell by more than half on each rank" "$lines"; fi
fi
finish reducer_loop_test
