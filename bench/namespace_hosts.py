"""Runs a benchmark script again on namespace hosts of this machine (tests/multinode/hosts.sh: each host its own
hostname, address and sshd; mpirun on the first launches over ssh), with their mpirun in LAUNCHER_VARIABLE; the
hosts are torn down when it ends. Root only."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER_VARIABLE = "DPTRAIN_HOSTS_LAUNCHER"

# $1 root, $2 slots per host, $3 hosts, $4 link rate or "", then the command.
WITH_HOSTS = r"""
source "$1/tests/multinode/hosts.sh"
HOSTS_SLOTS=$2 hosts_up "$3" || exit 1
if [ -n "$4" ]; then
  for i in $(seq 0 $(($3 - 1))); do link_shape "$i" "$4" || exit 1; done
fi
hosts_launcher "$HOSTS_DIR/mpirun"
HOSTS_MPIRUN_TIMEOUT=86400 DPTRAIN_HOSTS_LAUNCHER="$HOSTS_DIR/mpirun" "${@:5}"
"""


def launcher():
    """The hosts' mpirun when this process runs under them, else None."""
    return os.environ.get(LAUNCHER_VARIABLE)


def under_hosts(script, argv, hosts, slots, link=""):
    """Runs `script argv` with this Python under `hosts` hosts of `slots` slots each, every link shaped to `link`
    (tc rate, e.g. 1gbit) when given; returns its exit status."""
    command = ["bash", "-c", WITH_HOSTS, "with-hosts", ROOT, str(slots), str(hosts), link, sys.executable,
               os.path.abspath(script)] + list(argv)
    return subprocess.run(command, check=False).returncode


def mpirun_on_hosts(ranks_per_host, hosts):
    """The launcher's command for `ranks_per_host` ranks on each of the first `hosts` hosts."""
    return [launcher(), "-np", str(ranks_per_host * hosts),
            "--host", ",".join(f"node{i}:{ranks_per_host}" for i in range(hosts))]
