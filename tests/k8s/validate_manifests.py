#!/usr/bin/env python3
"""Checks every manifest users submit from k8s/ (each kustomization rendered by kubectl kustomize):

- core objects against Kubernetes' own schemas (kubernetes-validate, strict: unknown fields are errors);
- the MPIJob against the MPI Operator's v2beta1 schema (k8s/schemas/mpijob-v2beta1.yaml);
- TrainJob and ClusterTrainingRuntime against the Kubeflow Trainer API models (kubeflow-trainer-api);
- the PodMonitor: one endpoint per rank, on the worker holding it, on a port the workers declare;
- the launchers' Open MPI settings against the project's cluster launch settings (scripts/cluster-launch.env);
- the training config in the ConfigMap: every key one dptrain knows (`dptrain train --help-config`);
- the Grafana dashboard ConfigMap: tracking/grafana/dptrain.json, unchanged.

    validate_manifests.py DPTRAIN           every manifest passes every check that applies to it
    validate_manifests.py DPTRAIN --broken  a broken copy of a manifest fails each check

Exit status 0 when all of that holds; every failure is one line on stderr.
"""
import copy
import re
import shlex
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pydantic
import referencing
import yaml
from kubeflow_trainer_api import models as trainer_models

ROOT = Path(__file__).resolve().parents[2]
# The pinned kubectl (and its kustomize) that scripts/setup-venv.sh installs.
KUBECTL = str(ROOT / ".venv" / "bin" / "kubectl")
# The Kubernetes release the manifests are checked against (kubernetes-validate's schemas of it).
KUBERNETES_VERSION = "1.33.0"
# Each form users submit: kustomization folder -> extra kubectl kustomize flags.
FORMS = {
    "common": [],
    "mpijob": [],
    "mpijob-gpu": [],
    "mpijob-volcano": [],
    "trainer": [],
    "monitoring": ["--load-restrictor", "LoadRestrictionsNone"],
}
# Manifests applied on their own with kubectl apply -f.
SINGLE_FILES = ["common/import-data-job.yaml"]
CORE_GROUPS = {"v1", "batch/v1", "apps/v1"}
OPERATOR_ENV = {"OMPI_MCA_orte_keep_fqdn_hostnames", "OMPI_MCA_orte_default_hostfile", "OMPI_MCA_plm_rsh_args",
                "OMPI_MCA_orte_set_default_slots"}
RANK_PORT_BASE = 9400


class CheckFailed(Exception):
    """One check's verdict on one object: what is wrong, in one line."""


def render(form):
    """The objects `kubectl kustomize` makes of k8s/FORM."""
    try:
        out = subprocess.run([KUBECTL, "kustomize", *FORMS[form], str(ROOT / "k8s" / form)],
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit(f"validate_manifests: {KUBECTL} is missing (kubectl kustomize renders the manifests): "
                 "bash scripts/setup-venv.sh")
    except subprocess.CalledProcessError as e:
        sys.exit(f"validate_manifests: kubectl kustomize k8s/{form} failed: {e.stderr.strip()}")
    return [o for o in yaml.safe_load_all(out) if o]


def load_forms():
    forms = {form: render(form) for form in FORMS}
    for path in SINGLE_FILES:
        forms[path] = [o for o in yaml.safe_load_all((ROOT / "k8s" / path).read_text()) if o]
    return forms


def check_core(obj, _):
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.utils.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        raise CheckFailed(f"Kubernetes {KUBERNETES_VERSION} schema: {path}: {e.message}") from None


def mpijob_validator():
    """The MPIJob schema, resolving Kubernetes' definitions from kubernetes-validate's schemas."""
    schema = yaml.safe_load((ROOT / "k8s/schemas/mpijob-v2beta1.yaml").read_text())
    minor = kubernetes_validate.utils.major_minor(KUBERNETES_VERSION)
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{minor}.0-local-strict/_definitions.json", KUBERNETES_VERSION)
    registry = referencing.Registry().with_resources([
        (schema["$id"], referencing.Resource.from_contents(schema)),
        (definitions["$id"], referencing.Resource.from_contents(definitions)),
    ])
    return jsonschema.Draft202012Validator(schema, registry=registry)


MPIJOB_VALIDATOR = mpijob_validator()


def check_mpijob(obj, _):
    errors = sorted(MPIJOB_VALIDATOR.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise CheckFailed(f"MPIJob v2beta1 schema: {'.'.join(str(p) for p in e.path)}: {e.message}"
                          + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def unknown_fields(annotation, value, path):
    """Keys of VALUE that the Trainer API model ANNOTATION does not have, as dotted paths (pydantic ignores them)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return [p for a in args if a is not type(None) for p in unknown_fields(a, value, path)]
    if origin is list and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unknown_fields(args[0], v, f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_fields(args[1], v, f"{path}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) and isinstance(value, dict):
        fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
        if "actual_instance" in fields:  # a oneOf wrapper (Quantity, IntOrString): its value is a scalar
            return []
        found = []
        for key, v in value.items():
            if key not in fields:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(fields[key].annotation, v, f"{path}.{key}")
        return found
    return []


TRAINER_MODELS = {
    "TrainJob": trainer_models.TrainerV1alpha1TrainJob,
    "ClusterTrainingRuntime": trainer_models.TrainerV1alpha1ClusterTrainingRuntime,
}


def check_trainer(obj, _):
    model = TRAINER_MODELS[obj["kind"]]
    unknown = unknown_fields(model, obj, obj["kind"])
    if unknown:
        raise CheckFailed(f"kubeflow-trainer-api {model.__name__}: unknown field {unknown[0]}")
    try:
        model.from_dict(obj)
    except (pydantic.ValidationError, ValueError) as e:
        raise CheckFailed(f"kubeflow-trainer-api {model.__name__}: {' '.join(str(e).split())}") from None
    if obj["apiVersion"] != "trainer.kubeflow.org/v1alpha1":
        raise CheckFailed(f"apiVersion {obj['apiVersion']}, expected trainer.kubeflow.org/v1alpha1")


def find(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def worker_container(mpijob):
    return mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]


def check_podmonitor(obj, objs):
    """Rank r of the MPIJob serves RANK_PORT_BASE + r on the worker with replica index r // slotsPerWorker."""
    mpijob = next((j for j in find(objs, "MPIJob") if j["metadata"]["name"] == obj["metadata"]["name"]), None)
    if mpijob is None:
        raise CheckFailed(f"no MPIJob {obj['metadata']['name']} beside the PodMonitor of that name")
    slots = mpijob["spec"]["slotsPerWorker"]
    world = slots * mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"]
    ports = {p["name"]: p["containerPort"] for p in worker_container(mpijob).get("ports", [])}
    want = {f"rank-{r}": (RANK_PORT_BASE + r, str(r // slots)) for r in range(world)}
    got = {}
    for endpoint in obj["spec"]["podMetricsEndpoints"]:
        keep = [r for r in endpoint.get("relabelings", []) if r.get("action") == "keep" and r.get("sourceLabels") ==
                ["__meta_kubernetes_pod_label_training_kubeflow_org_replica_index"]]
        got[endpoint["port"]] = (ports.get(endpoint["port"]), keep[0]["regex"] if len(keep) == 1 else None)
    if got != want:
        wrong = sorted(set(want.items()) ^ set(got.items()))
        raise CheckFailed(f"endpoints (port name: (container port, replica index)) differ from the MPIJob's "
                          f"{world} ranks at {slots} per worker: {wrong[:3]}")
    if obj["spec"]["selector"]["matchLabels"] != {"training.kubeflow.org/job-name": mpijob["metadata"]["name"],
                                                  "training.kubeflow.org/job-role": "worker"}:
        raise CheckFailed("selector must pick the MPIJob's worker pods (the operator's job-name and job-role labels)")


def cluster_launch_env():
    """scripts/cluster-launch.env: its text and its `export NAME=value` settings."""
    path = ROOT / "scripts/cluster-launch.env"
    if not path.exists():
        raise CheckFailed(f"{path} is missing: it holds the project's cluster launch settings")
    text = path.read_text()
    settings = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            settings.update(word.partition("=")[::2] for word in words[1:])
    return text, settings


def launcher_pod(obj):
    if obj["kind"] == "MPIJob":
        return obj["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    job = next(j for j in obj["spec"]["template"]["spec"]["replicatedJobs"] if j["name"] == "launcher")
    return job["template"]["spec"]["template"]["spec"]


def launcher_container(obj):
    return launcher_pod(obj)["containers"][0]


def check_launch_env(obj, objs):
    """The launcher runs with the cluster launch settings: scripts/cluster-launch.env, unchanged, in the ConfigMap
    mounted at /etc/dptrain (which dptrain-k8s sources; the operator would override a manifest's plm_rsh_args)."""
    text, settings = cluster_launch_env()
    owned = sorted(settings.keys() & (OPERATOR_ENV - {"OMPI_MCA_plm_rsh_args"}))
    if owned:
        raise CheckFailed(f"scripts/cluster-launch.env sets {owned[0]}, which the operator sets for each job")
    container = launcher_container(obj)
    in_env = [e["name"] for e in container.get("env", []) if e["name"].startswith("OMPI_MCA_")]
    if in_env:
        raise CheckFailed(f"launcher env sets {in_env[0]}: Open MPI settings belong in scripts/cluster-launch.env")
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == "/etc/dptrain"), None)
    volume = next((v for v in launcher_pod(obj).get("volumes", []) if mount and v["name"] == mount["name"]), {})
    name = volume.get("configMap", {}).get("name")
    config = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name), None)
    if config is None:
        raise CheckFailed("the launcher mounts no ConfigMap of this form at /etc/dptrain")
    if config.get("data", {}).get("cluster-launch.env") != text:
        raise CheckFailed(f"ConfigMap {name}'s cluster-launch.env differs from scripts/cluster-launch.env")


def dptrain_config_keys(dptrain):
    out = subprocess.run([dptrain, "train", "--help-config"], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"^  ([a-z_]+(?:\.[a-z_]+)+)  \(", out, re.M))


def flatten(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def check_config(obj, _):
    try:
        keys = set(flatten(tomllib.loads(obj["data"]["config.toml"])))
    except tomllib.TOMLDecodeError as e:
        raise CheckFailed(f"config.toml: {e}") from None
    unknown = sorted(keys - CONFIG_KEYS)
    if unknown:
        raise CheckFailed(f"config.toml: {unknown[0]} is no dptrain config key (dptrain train --help-config)")


def check_dashboard(obj, _):
    if obj["data"]["dptrain.json"] != (ROOT / "tracking/grafana/dptrain.json").read_text():
        raise CheckFailed("dptrain.json differs from tracking/grafana/dptrain.json")
    if obj["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        raise CheckFailed("the dashboard ConfigMap needs the label grafana_dashboard: \"1\" for Grafana's sidecar")


def checks_for(obj):
    """The checks that apply to OBJ; an object no check covers is an error."""
    kind, api = obj["kind"], obj["apiVersion"]
    if api in CORE_GROUPS:
        data = obj.get("data", {}) if kind == "ConfigMap" else {}
        return [check_core] + [check for key, check in (("config.toml", check_config), ("dptrain.json", check_dashboard))
                               if key in data]
    if kind == "MPIJob":
        return [check_mpijob, check_launch_env]
    if kind in TRAINER_MODELS:
        return [check_trainer] + ([check_launch_env] if kind == "ClusterTrainingRuntime" else [])
    if kind == "PodMonitor":
        return [check_podmonitor]
    return []


def validate(forms):
    failures = 0
    for form, objs in forms.items():
        for obj in objs:
            name = f"k8s/{form}: {obj['kind']}/{obj['metadata']['name']}"
            checks = checks_for(obj)
            if not checks:
                print(f"{name}: no check covers {obj['apiVersion']} {obj['kind']}", file=sys.stderr)
                failures += 1
            for check in checks:
                try:
                    check(obj, objs)
                    print(f"ok   {name}: {check.__name__}")
                except CheckFailed as e:
                    print(f"FAIL {name}: {check.__name__}: {e}", file=sys.stderr)
                    failures += 1
    return failures


def broken_cases(forms):
    """(check, the unbroken object, its objects, a broken copy, the objects beside that, what was broken): one or more
    per check."""
    cases = []

    def case(check, form, kind, what, change, beside=None):
        """KIND of FORM broken by CHANGE; or, with BESIDE (a kind), the object of kind BESIDE next to it."""
        original = next(o for o in forms[form] if o["kind"] == kind)
        broken_objs = copy.deepcopy(forms[form])
        broken = next(o for o in broken_objs if o["kind"] == kind)
        change(next(o for o in broken_objs if o["kind"] == beside) if beside else broken)
        cases.append((check, original, forms[form], broken, broken_objs, f"{kind} {what}"))

    case(check_core, "common", "PersistentVolumeClaim", "accessModes a string, not a list",
         lambda o: o["spec"].update(accessModes="ReadWriteMany"))
    case(check_core, "common/import-data-job.yaml", "Job", "container with a misspelt field (comand)",
         lambda o: o["spec"]["template"]["spec"]["containers"][0].update(comand=["true"]))
    case(check_mpijob, "mpijob", "MPIJob", "slotsPerWorker a string", lambda o: o["spec"].update(slotsPerWorker="1"))
    case(check_mpijob, "mpijob", "MPIJob", "unknown spec field slotPerWorker",
         lambda o: o["spec"].update(slotPerWorker=1))
    case(check_mpijob, "mpijob", "MPIJob", "two launchers",
         lambda o: o["spec"]["mpiReplicaSpecs"]["Launcher"].update(replicas=2))
    case(check_mpijob, "mpijob", "MPIJob", "cleanPodPolicy Sometimes",
         lambda o: o["spec"]["runPolicy"].update(cleanPodPolicy="Sometimes"))
    case(check_mpijob, "mpijob", "MPIJob", "worker container without a name", lambda o: worker_container(o).pop("name"))
    case(check_trainer, "trainer", "TrainJob", "numNodes a string", lambda o: o["spec"]["trainer"].update(numNodes="2"))
    case(check_trainer, "trainer", "ClusterTrainingRuntime", "unknown field mpi.numProcsPerNode",
         lambda o: o["spec"]["mlPolicy"]["mpi"].update(numProcsPerNode=1))
    case(check_podmonitor, "mpijob", "PodMonitor", "without the last rank's endpoint",
         lambda o: o["spec"]["podMetricsEndpoints"].pop())
    case(check_podmonitor, "mpijob-gpu", "PodMonitor", "keeping rank 4 on worker 0",
         lambda o: o["spec"]["podMetricsEndpoints"][4]["relabelings"][0].update(regex="0"))
    for form, kind in (("mpijob", "MPIJob"), ("trainer", "ClusterTrainingRuntime")):
        case(check_launch_env, form, kind, "launcher with an OMPI_MCA_btl of its own",
             lambda o: launcher_container(o)["env"].append({"name": "OMPI_MCA_btl", "value": "self"}))
        case(check_launch_env, form, kind, "beside a ConfigMap whose cluster-launch.env has an extra line",
             lambda o: o["data"].update({"cluster-launch.env": o["data"]["cluster-launch.env"] + "export A=1\n"}),
             beside="ConfigMap")
    case(check_config, "common", "ConfigMap", "config with an unknown table [training]",
         lambda o: o["data"].update({"config.toml": o["data"]["config.toml"].replace("[train]", "[training]", 1)}))
    case(check_dashboard, "monitoring", "ConfigMap", "dashboard edited in the ConfigMap",
         lambda o: o["data"].update({"dptrain.json": o["data"]["dptrain.json"].replace('"dptrain"', '"other"', 1)}))
    return cases


def validate_broken(forms):
    """Each check accepts the manifest as it is and rejects its broken copy."""
    failures = 0
    for check, original, objs, broken, broken_objs, what in broken_cases(forms):
        try:
            check(original, objs)
        except CheckFailed as e:
            print(f"FAIL {check.__name__} rejects the unbroken {original['kind']} already: {e}", file=sys.stderr)
            failures += 1
            continue
        try:
            check(broken, broken_objs)
            print(f"FAIL {check.__name__} accepted: {what}", file=sys.stderr)
            failures += 1
        except CheckFailed as e:
            print(f"ok   {check.__name__} rejects {what}: {e}")
    return failures


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--broken"]):
        sys.exit("usage: validate_manifests.py DPTRAIN [--broken]")
    CONFIG_KEYS = dptrain_config_keys(sys.argv[1])
    forms = load_forms()
    failed = validate_broken(forms) if sys.argv[2:] else validate(forms)
    print(f"validate_manifests: {failed} failed")
    sys.exit(1 if failed else 0)
