#!/usr/bin/env python3
"""What the MPI Operator (v2beta1 controller, Open MPI) makes of an MPIJob's manifest, for operator_launch_test.sh:
the pods' hostnames, commands and environment, the launcher's /etc/mpi/hostfile, the ConfigMap's files.

    mpijob_pods.py RENDERED.yaml OUT_DIR     writes OUT_DIR/hostfile, OUT_DIR/config/<key>, OUT_DIR/pods.sh

pods.sh (bash) sets: job, namespace, slots, workers, ssh_path, grace_s, launcher_host, worker_hosts (array),
launcher_cmd, worker_cmd, import_cmd, launcher_env, worker_env (arrays, env NAME=VALUE words).
"""
import shlex
import sys
from pathlib import Path

import yaml


def container(replica):
    return replica["template"]["spec"]["containers"][0]


def env_words(c, added):
    """The container's env as the kubelet gives it: the manifest's entries, then those the operator appends."""
    words = [f"{e['name']}={e.get('value', '')}" for e in c.get("env", [])]
    return words + [f"{k}={v}" for k, v in added]


def bash_array(name, words):
    return f"{name}=({' '.join(shlex.quote(w) for w in words)})"


def main(rendered, out):
    objs = [o for o in yaml.safe_load_all(Path(rendered).read_text()) if o]
    mpijob = next(o for o in objs if o["kind"] == "MPIJob")
    config = next(o for o in objs if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"] in {v["configMap"]["name"] for r in mpijob["spec"]["mpiReplicaSpecs"].values()
                                                for v in r["template"]["spec"].get("volumes", []) if "configMap" in v})
    import_job = yaml.safe_load((Path(__file__).resolve().parents[2] / "k8s/common/import-data-job.yaml").read_text())

    job = mpijob["metadata"]["name"]
    namespace = mpijob["metadata"].get("namespace", "default")
    spec = mpijob["spec"]
    slots = spec.get("slotsPerWorker", 1)
    launcher, worker = spec["mpiReplicaSpecs"]["Launcher"], spec["mpiReplicaSpecs"]["Worker"]
    workers = worker["replicas"]
    worker_hosts = [f"{job}-worker-{i}" for i in range(workers)]
    # The operator's hostfile: one FQDN through the job's headless Service per worker (newConfigMap).
    out.mkdir(parents=True, exist_ok=True)
    (out / "hostfile").write_text("".join(f"{h}.{job}.{namespace}.svc slots={slots}\n" for h in worker_hosts))
    (out / "config").mkdir(exist_ok=True)
    for key, value in config["data"].items():
        (out / "config" / key).write_text(value)

    # newLauncherPodTemplate: K_MPI_JOB_ROLE, the Open MPI variables and, for a launcher that runs no ranks,
    # NVIDIA_* emptied; newWorker: K_MPI_JOB_ROLE.
    launcher_added = [("K_MPI_JOB_ROLE", "launcher"),
                      ("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
                      ("OMPI_MCA_orte_default_hostfile", "/etc/mpi/hostfile"),
                      ("OMPI_MCA_plm_rsh_args", "-o ConnectionAttempts=10"),
                      ("OMPI_MCA_orte_set_default_slots", str(slots)),
                      ("NVIDIA_VISIBLE_DEVICES", ""),
                      ("NVIDIA_DRIVER_CAPABILITIES", "")]
    worker_c, launcher_c = container(worker), container(launcher)
    import_c = import_job["spec"]["template"]["spec"]["containers"][0]
    lines = [
        f"job={shlex.quote(job)}",
        f"namespace={shlex.quote(namespace)}",
        f"slots={slots}",
        f"workers={workers}",
        f"ssh_path={shlex.quote(spec['sshAuthMountPath'])}",
        f"grace_s={launcher['template']['spec'].get('terminationGracePeriodSeconds', 30)}",
        f"launcher_host={shlex.quote(job + '-launcher')}",
        bash_array("worker_hosts", worker_hosts),
        bash_array("launcher_cmd", launcher_c.get("command", []) + launcher_c.get("args", [])),
        # An empty worker command is the operator's default, sshd -De.
        bash_array("worker_cmd", (worker_c.get("command", []) + worker_c.get("args", [])) or ["/usr/sbin/sshd", "-De"]),
        bash_array("import_cmd", import_c.get("command", []) + import_c.get("args", [])),
        bash_array("launcher_env", env_words(launcher_c, launcher_added)),
        bash_array("worker_env", env_words(worker_c, [("K_MPI_JOB_ROLE", "worker")])),
    ]
    (out / "pods.sh").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mpijob_pods.py RENDERED.yaml OUT_DIR")
    main(sys.argv[1], Path(sys.argv[2]))
