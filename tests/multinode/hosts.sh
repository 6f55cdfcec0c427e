# Hosts as Linux namespaces on this machine, for tests of multi-node runs: each host has its own hostname,
# network address, /dev/shm, /etc/hosts and sshd, and mpirun on host 0 launches ranks on all of them over ssh,
# as a cluster's (or the MPI Operator's) launcher does. Sourced by tests; needs root.
#
#   hosts_up N [PREFIX]        N hosts named PREFIX0.. (default node0..), K slots each (HOSTS_SLOTS, default 2):
#                              writes $HOSTS_DIR/hostfile, ssh_config, etc-hosts; exports HOSTS_DIR, HOSTS_COUNT,
#                              HOSTS_NAMES (array), HOSTS_SSH_CONFIG, HOSTS_SHARED (an empty directory for the
#                              test's data and checkpoints, removed with the hosts). Fails with one line naming a
#                              missing program or kernel feature. Installs hosts_down as the EXIT/INT/TERM trap.
#   host_run I CMD...          CMD inside host I (its network, UTS and mount namespaces), in the current directory
#   host_mpirun ARGS...        mpirun on host $HOSTS_LAUNCHER (default 0) with $HOSTS_HOSTFILE (default the one
#                              hosts_up wrote), ssh as the launch agent, the cluster launch settings of
#                              scripts/cluster-launch.env, ranks that yield the CPU while they wait in MPI (the
#                              hosts share this machine's cores), and a hard limit of $HOSTS_MPIRUN_TIMEOUT s (300)
#   hosts_launcher FILE        writes FILE, an executable that runs host_mpirun with its arguments, for programs
#                              that are not this shell (it works while the hosts are up)
#   host_pids I                the PIDs of every process in host I (its holder included)
#   link_down I / link_up I    cuts / restores host I's link (its port on the switch goes down / up)
#   link_shape I RATE [DELAY]  shapes host I's link both ways with tc tbf to RATE (e.g. 10gbit); a DELAY other than
#                              0 needs the kernel's netem qdisc and fails naming it when absent
#   link_unshape I             removes the shaping
#   host_cpu_limit I PERCENT   caps every process of host I, and those it starts later, to PERCENT of one CPU
#                              (a cgroup v1 cpu quota), to make it a straggler
#   host_kill I                SIGKILL to every process of host I except its holder (its namespaces stay)
#   hosts_down                 kills every process of every host and the switch, removes what hosts_up made
#
# The filesystem is shared: every host sees the caller's files except /dev/shm and /etc/hosts. The network is
# private: a "switch" namespace holds a bridge, every host a veth pair into it (10.233.0.0/24); the machine's own
# interfaces are never touched. Namespace holders die with the shell that made them (PR_SET_PDEATHSIG), and
# hosts_up removes what an earlier, killed test left behind. A TERM to the test's shell takes effect when its
# current command returns (bash defers traps until then; every host_mpirun has a hard limit), Ctrl-C at once.

hosts_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOSTS_SUBNET=10.233.0
HOSTS_STATE_ROOT=${TMPDIR:-/tmp}
# A host cut off while its daemon has unacknowledged data in flight learns of it only when TCP gives up
# retransmitting (tcp_retries2, 15 by default: about 15 minutes; 5: about 13 s), as on a cluster node tuned so
# that ranks of a lost job do not outlive it by long (docs/multi-node.md).
HOSTS_TCP_RETRIES=5

# hosts_fail MESSAGE: one line on stderr, non-zero status.
hosts_fail() {
  echo "hosts.sh: $*" >&2
  return 1
}

# hosts_require: every program and kernel feature the hosts need, or one line naming the first one missing.
hosts_require() {
  local program
  for program in unshare nsenter setpriv ip tc ssh ssh-keygen mpirun /usr/sbin/sshd; do
    command -v "$program" > /dev/null || hosts_fail "missing program: $program (bash scripts/install-deps.sh)" ||
      return 1
  done
  [ "$(id -u)" -eq 0 ] || hosts_fail "needs root (network namespaces, veth, mounts)" || return 1
  unshare --net --uts --mount --propagation private true 2> /dev/null ||
    hosts_fail "kernel feature missing: network/UTS/mount namespaces (unshare --net --uts --mount failed)" || return 1
  unshare --net sh -c 'ip link add va type veth peer name vb' 2> /dev/null ||
    hosts_fail "kernel feature missing: veth (ip link add type veth failed; CONFIG_VETH)" || return 1
  unshare --net sh -c 'ip link add br0 type bridge' 2> /dev/null ||
    hosts_fail "kernel feature missing: bridge (ip link add type bridge failed; CONFIG_BRIDGE)" || return 1
  unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /dev/shm' 2> /dev/null ||
    hosts_fail "kernel feature missing: tmpfs (mount -t tmpfs failed)" || return 1
}

# hosts_sweep: processes left in the namespaces of an earlier test whose shell died without hosts_down.
hosts_sweep() {
  local dir owner
  for dir in "$HOSTS_STATE_ROOT"/dptrain-hosts.*; do
    [ -f "$dir/owner" ] || continue
    owner=$(cat "$dir/owner")
    kill -0 "$owner" 2> /dev/null && continue
    hosts_kill_namespaces "$dir/namespaces"
    hosts_remove_cgroups "$dir"
    rm -rf "$dir"
  done
}

# hosts_kill_namespaces FILE: SIGKILL to every process whose network namespace is listed in FILE.
hosts_kill_namespaces() {
  [ -f "$1" ] || return 0
  local proc ns victims=()
  for proc in /proc/[0-9]*; do
    ns=$(readlink "$proc/ns/net" 2> /dev/null) || continue
    grep -qxF "$ns" "$1" && victims+=("${proc#/proc/}")
  done
  [ ${#victims[@]} -eq 0 ] || kill -KILL "${victims[@]}" 2> /dev/null
  return 0
}

# hosts_remove_cgroups DIR: the cgroups host_cpu_limit made for DIR's hosts.
hosts_remove_cgroups() {
  local cgroup
  for cgroup in /sys/fs/cgroup/cpu/"$(basename "$1")".*; do
    [ -d "$cgroup" ] || continue
    while read -r pid; do echo "$pid" > /sys/fs/cgroup/cpu/cgroup.procs || true; done < "$cgroup/cgroup.procs" 2> /dev/null
    rmdir "$cgroup" 2> /dev/null || true
  done
  return 0
}

# hosts_holder NAME UNSHARE-FLAGS... -- SCRIPT: starts a process that holds new namespaces and runs SCRIPT (sh)
# inside them before sleeping; sets hosts_holder_pid once SCRIPT has run (not a $(...): the holder dies with its
# parent).
hosts_holder() {
  local ready="$HOSTS_DIR/$1.ready" flags=()
  shift
  while [ "$1" != "--" ]; do flags+=("$1"); shift; done
  setpriv --pdeathsig KILL unshare "${flags[@]}" sh -c "$2 && touch '$ready' && exec sleep infinity" \
    > "$HOSTS_DIR/$(basename "$ready" .ready).log" 2>&1 &
  local pid=$!
  disown "$pid"  # hosts_down kills it; the shell need not report that
  local _
  for _ in $(seq 1 100); do
    [ -e "$ready" ] && { hosts_holder_pid=$pid; return 0; }
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  hosts_fail "could not set up namespaces ($(tr '\n' ' ' < "$HOSTS_DIR/$(basename "$ready" .ready).log"))"
}

hosts_up() {
  local count=$1 prefix=${2:-node} slots=${HOSTS_SLOTS:-2} i
  [ "$count" -ge 1 ] 2> /dev/null || { hosts_fail "hosts_up N: N must be a positive number"; return 1; }
  hosts_require || return 1
  hosts_sweep
  HOSTS_DIR=$(mktemp -d "$HOSTS_STATE_ROOT/dptrain-hosts.XXXXXX") || return 1
  echo "$$" > "$HOSTS_DIR/owner"
  HOSTS_COUNT=$count
  HOSTS_NAMES=()
  HOSTS_PIDS=()
  HOSTS_SSHD_PIDS=()
  trap 'hosts_down' EXIT
  trap 'hosts_down; exit 130' INT
  trap 'hosts_down; exit 143' TERM
  export HOSTS_DIR HOSTS_COUNT HOSTS_SSH_CONFIG="$HOSTS_DIR/ssh_config" HOSTS_SHARED="$HOSTS_DIR/shared"
  mkdir "$HOSTS_SHARED"

  printf '127.0.0.1 localhost\n' > "$HOSTS_DIR/etc-hosts"
  for i in $(seq 0 $((count - 1))); do
    HOSTS_NAMES+=("$prefix$i")
    printf '%s.%d %s\n' "$HOSTS_SUBNET" $((10 + i)) "$prefix$i" >> "$HOSTS_DIR/etc-hosts"
    printf '%s slots=%d\n' "$prefix$i" "$slots" >> "$HOSTS_DIR/hostfile"
  done

  ssh-keygen -q -t ed25519 -N '' -f "$HOSTS_DIR/host_key" -C dptrain-test-host || return 1
  ssh-keygen -q -t ed25519 -N '' -f "$HOSTS_DIR/client_key" -C dptrain-test-client || return 1
  cp "$HOSTS_DIR/client_key.pub" "$HOSTS_DIR/authorized_keys"
  # Host-key checking is off for these hosts only: their key is made afresh by every test.
  cat > "$HOSTS_SSH_CONFIG" <<EOF
Host ${HOSTS_NAMES[*]}
  User root
  IdentityFile $HOSTS_DIR/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 5
EOF

  hosts_holder switch --net -- 'ip link set lo up && ip link add br0 type bridge && ip link set br0 up' || return 1
  local switch=$hosts_holder_pid
  HOSTS_SWITCH_PID=$switch
  readlink "/proc/$switch/ns/net" >> "$HOSTS_DIR/namespaces"
  mkdir -p /run/sshd
  for i in $(seq 0 $((count - 1))); do
    local name=${HOSTS_NAMES[$i]} pid
    hosts_holder "$name" --net --uts --mount --propagation private -- \
      "hostname $name && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && mount --bind '$HOSTS_DIR/etc-hosts' /etc/hosts \
       && ip link set lo up && sysctl -qw net.ipv4.tcp_retries2=$HOSTS_TCP_RETRIES" || return 1
    pid=$hosts_holder_pid
    HOSTS_PIDS+=("$pid")
    readlink "/proc/$pid/ns/net" >> "$HOSTS_DIR/namespaces"
    # Both ends are made inside namespaces: "port$i" on the switch's bridge, eth0 in the host.
    nsenter -t "$switch" -n ip link add "port$i" type veth peer name eth0 netns "$pid" &&
      nsenter -t "$switch" -n ip link set "port$i" master br0 up &&
      nsenter -t "$pid" -n ip addr add "$HOSTS_SUBNET.$((10 + i))/24" dev eth0 &&
      nsenter -t "$pid" -n ip link set eth0 up || { hosts_fail "could not wire $name into the switch"; return 1; }
    cat > "$HOSTS_DIR/sshd_config.$i" <<EOF
ListenAddress $HOSTS_SUBNET.$((10 + i))
HostKey $HOSTS_DIR/host_key
PidFile none
AuthorizedKeysFile $HOSTS_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
ClientAliveInterval 2
ClientAliveCountMax 3
EOF
    setpriv --pdeathsig KILL nsenter -t "$pid" -n -u -m /usr/sbin/sshd -D -e -f "$HOSTS_DIR/sshd_config.$i" \
      > "$HOSTS_DIR/sshd.$i.log" 2>&1 &
    HOSTS_SSHD_PIDS+=($!)
    disown $!  # host_kill ends it; its shell need not report that
  done
  for i in $(seq 0 $((count - 1))); do
    local _ up=""
    for _ in $(seq 1 100); do
      host_run 0 ssh -F "$HOSTS_SSH_CONFIG" "${HOSTS_NAMES[$i]}" true 2> /dev/null && { up=1; break; }
      sleep 0.1
    done
    [ -n "$up" ] || { hosts_fail "sshd on ${HOSTS_NAMES[$i]} does not answer: $(tail -3 "$HOSTS_DIR/sshd.$i.log")"; return 1; }
  done
}

host_run() {
  local i=$1
  shift
  nsenter -t "${HOSTS_PIDS[$i]}" -n -u -m --wd="$PWD" -- "$@"
}

host_mpirun() {
  # shellcheck source=../../scripts/cluster-launch.env
  (source "$hosts_lib_dir/../../scripts/cluster-launch.env" &&
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 &&
    export OMPI_MCA_plm_rsh_agent="ssh -F $HOSTS_SSH_CONFIG" &&
    export OMPI_MCA_oob_tcp_if_include="$HOSTS_SUBNET.0/24" OMPI_MCA_btl_tcp_if_include="$HOSTS_SUBNET.0/24" &&
    export OMPI_MCA_mpi_yield_when_idle=1 &&  # the hosts share this machine's cores: a waiting rank yields them
    host_run "${HOSTS_LAUNCHER:-0}" timeout -k 5 "${HOSTS_MPIRUN_TIMEOUT:-300}" \
      mpirun --hostfile "${HOSTS_HOSTFILE:-$HOSTS_DIR/hostfile}" --oversubscribe --bind-to none "$@")
}

hosts_launcher() {
  cat > "$1" <<EOF
#!/usr/bin/env bash
# host_mpirun of hosts.sh for the hosts in $HOSTS_DIR.
source '$hosts_lib_dir/hosts.sh'
HOSTS_DIR='$HOSTS_DIR'
HOSTS_SSH_CONFIG='$HOSTS_SSH_CONFIG'
HOSTS_PIDS=(${HOSTS_PIDS[*]})
host_mpirun "\$@"
EOF
  chmod +x "$1"
}

host_pids() {
  local ns proc
  ns=$(readlink "/proc/${HOSTS_PIDS[$1]}/ns/net") || return 1
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/ns/net" 2> /dev/null)" = "$ns" ] && echo "${proc#/proc/}"
  done
  return 0
}

# host_port I: host I's port on the switch.
host_port() { echo "port$1"; }

link_down() { nsenter -t "$HOSTS_SWITCH_PID" -n ip link set "$(host_port "$1")" down; }
link_up() { nsenter -t "$HOSTS_SWITCH_PID" -n ip link set "$(host_port "$1")" up; }

link_shape() {
  local i=$1 rate=$2 delay=${3:-0}
  case $delay in
    0 | 0us | 0ms | 0s) ;;
    *)
      nsenter -t "$HOSTS_SWITCH_PID" -n tc qdisc add dev "$(host_port "$i")" root netem delay "$delay" 2> /dev/null ||
        { hosts_fail "kernel feature missing: netem qdisc (CONFIG_NET_SCH_NETEM) for a $delay link delay"; return 1; }
      nsenter -t "$HOSTS_SWITCH_PID" -n tc qdisc del dev "$(host_port "$i")" root
      ;;
  esac
  # Both directions: the switch port shapes what reaches host I, the host's eth0 what leaves it.
  local burst
  burst=$(hosts_tbf_burst "$rate") || return 1
  link_unshape "$i"
  nsenter -t "$HOSTS_SWITCH_PID" -n tc qdisc add dev "$(host_port "$i")" root handle 1: tbf rate "$rate" \
    burst "$burst" latency 50ms || { hosts_fail "kernel feature missing: tbf qdisc (CONFIG_NET_SCH_TBF)"; return 1; }
  host_run "$i" tc qdisc add dev eth0 root handle 1: tbf rate "$rate" burst "$burst" latency 50ms || return 1
  if [ "$delay" != 0 ]; then
    nsenter -t "$HOSTS_SWITCH_PID" -n tc qdisc add dev "$(host_port "$i")" parent 1:1 netem delay "$delay" &&
      host_run "$i" tc qdisc add dev eth0 parent 1:1 netem delay "$delay" || return 1
  fi
}

# hosts_tbf_burst RATE: a bucket of about 1 ms at RATE (RATE as NUMBER{kbit,mbit,gbit}; at least 64 KiB), so
# that a fast link is not capped by the kernel's timer granularity.
hosts_tbf_burst() {
  local number unit bytes
  [[ $1 =~ ^([0-9]+)([kmg]?)bit$ ]] || { hosts_fail "link_shape: rate '$1' is not NUMBER{kbit,mbit,gbit}"; return 1; }
  number=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[2]}
  case $unit in k) bytes=$((number * 1000 / 8000)) ;; m) bytes=$((number * 1000000 / 8000)) ;;
    g) bytes=$((number * 1000000000 / 8000)) ;; *) bytes=$((number / 8000)) ;; esac
  [ "$bytes" -lt 65536 ] && bytes=65536
  echo "$bytes"
}

link_unshape() {
  nsenter -t "$HOSTS_SWITCH_PID" -n tc qdisc del dev "$(host_port "$1")" root 2> /dev/null || true
  host_run "$1" tc qdisc del dev eth0 root 2> /dev/null || true
}

host_cpu_limit() {
  local i=$1 percent=$2 cgroup pid
  cgroup="/sys/fs/cgroup/cpu/$(basename "$HOSTS_DIR").${HOSTS_NAMES[$i]}"
  [ -d /sys/fs/cgroup/cpu ] || { hosts_fail "kernel feature missing: cgroup v1 cpu controller at /sys/fs/cgroup/cpu"; return 1; }
  mkdir -p "$cgroup" || { hosts_fail "cannot create $cgroup"; return 1; }
  # A 10 ms period: the cap slows every step evenly, even steps of a few milliseconds.
  echo 10000 > "$cgroup/cpu.cfs_period_us"
  echo $((percent * 100)) > "$cgroup/cpu.cfs_quota_us" || { hosts_fail "cannot set a CPU quota in $cgroup"; return 1; }
  # A process that has just exited cannot move; every other one must.
  for pid in $(host_pids "$i"); do
    echo "$pid" > "$cgroup/cgroup.procs" 2> /dev/null || [ ! -d "/proc/$pid" ] ||
      { hosts_fail "cannot move process $pid of ${HOSTS_NAMES[$i]} into $cgroup"; return 1; }
  done
}

host_kill() {
  local pid victims=()
  for pid in $(host_pids "$1"); do
    [ "$pid" = "${HOSTS_PIDS[$1]}" ] || victims+=("$pid")
  done
  [ ${#victims[@]} -eq 0 ] || kill -KILL "${victims[@]}" 2> /dev/null
  return 0
}

# As the EXIT trap it keeps the caller's exit status, also under set -e.
hosts_down() {
  local status=$? pid _
  [ -n "${HOSTS_DIR:-}" ] && [ -d "$HOSTS_DIR" ] || return "$status"
  hosts_kill_namespaces "$HOSTS_DIR/namespaces"
  # The namespaces go with their last process; the holders are the last to be reaped.
  for pid in "${HOSTS_PIDS[@]}" "${HOSTS_SSHD_PIDS[@]}" ${HOSTS_SWITCH_PID:-}; do
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  done
  hosts_remove_cgroups "$HOSTS_DIR"
  rm -rf "$HOSTS_DIR"
  HOSTS_DIR=""
  return "$status"
}
