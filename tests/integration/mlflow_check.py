# Reads a dptrain run back through an MLflow server's REST API and checks it against the run's metrics.jsonl:
# every (metric, step) once with the same value, the params, tags, final status and artifacts. With
# --checkpoints=STORE --model=NAME also the run's checkpoint versions in STORE: each manifest uploaded as an
# artifact with the same bytes, exactly one model version of NAME per checkpoint version, and the aliases
# `latest-checkpoint` and `best` on the versions the store's `latest` and `best` name.
# Usage: mlflow_check.py URI EXPERIMENT RUN_DIR [--no-params] [--checkpoints=STORE --model=NAME].
# Prints what differs; exit 1 when anything does.
import hashlib
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

FLOAT_MAX = 1.7976931348623157e308  # MLflow stores +-Inf as +-max double


def fetch(uri, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(uri + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def call(uri, path, body=None):
    return json.loads(fetch(uri, path, body) or b"{}")


def check_checkpoints(uri, run, run_id, store, model, problems):
    """The run's checkpoint versions in `store` against the run's artifacts and the Model Registry."""
    manifests = {}  # version name -> manifest.json bytes, for the versions this run published
    versions_dir = os.path.join(store, "versions")
    for name in sorted(os.listdir(versions_dir)):
        with open(os.path.join(versions_dir, name, "manifest.json"), "rb") as f:
            data = f.read()
        if json.loads(data).get("state", {}).get("run_id") == run_id:
            manifests[name] = data
    if not manifests:
        problems.append(f"no checkpoint version of run {run_id} in {store}")
        return
    mlflow_run = run["info"]["run_id"]
    artifacts = "/api/2.0/mlflow-artifacts/artifacts/" + run["info"]["artifact_uri"].split(":", 1)[1].lstrip("/")
    for name, data in manifests.items():
        try:
            uploaded = fetch(uri, f"{artifacts}/checkpoints/{name}/manifest.json")
        except urllib.error.HTTPError as e:
            uploaded = f"HTTP {e.code}".encode()
        if uploaded != data:
            problems.append(f"artifact checkpoints/{name}/manifest.json is {uploaded[:60]!r}..., not the store's")

    query = urllib.parse.urlencode({"filter": f"name = '{model}' and tags.`dptrain.run_id` = '{run_id}'",
                                    "max_results": 1000})
    found = call(uri, f"/api/2.0/mlflow/model-versions/search?{query}").get("model_versions", [])
    by_checkpoint = {}  # version name -> [model versions]
    for version in found:
        tags = {t["key"]: t["value"] for t in version.get("tags", [])}
        name = tags.get("dptrain.checkpoint.version")
        by_checkpoint.setdefault(name, []).append(version["version"])
        if name in manifests and (tags.get("dptrain.checkpoint.manifest_sha256") !=
                                  hashlib.sha256(manifests[name]).hexdigest() or
                                  version["source"] != f"runs:/{mlflow_run}/checkpoints/{name}"):
            problems.append(f"model version {version['version']} of {name}: tags {tags}, source {version['source']}")
    counts = {name: len(by_checkpoint.get(name, [])) for name in set(manifests) | set(by_checkpoint)}
    wrong = {name: count for name, count in counts.items() if count != 1 or name not in manifests}
    if wrong:
        problems.append(f"model versions per checkpoint version, want 1 each: {wrong}")
        return

    registered = call(uri, f"/api/2.0/mlflow/registered-models/get?name={urllib.parse.quote(model)}")
    aliases = {a["alias"]: a["version"] for a in registered["registered_model"].get("aliases", [])}
    for store_alias, mlflow_alias in (("latest", "latest-checkpoint"), ("best", "best")):
        with open(os.path.join(store, "aliases", store_alias)) as f:
            target = f.read().strip()
        want = by_checkpoint.get(target, ["(none)"])[0]
        if aliases.get(mlflow_alias) != want:
            problems.append(f"alias {mlflow_alias} -> {aliases.get(mlflow_alias)}, want {want} "
                            f"(the store's {store_alias} is {target})")
    return len(manifests)


def number(value):
    return float(value)  # float() reads "NaN", "Infinity", "-Infinity" as well as numbers


def same(expected, got):
    if math.isnan(expected):
        return math.isnan(got)
    if math.isinf(expected):
        return got == math.copysign(FLOAT_MAX, expected) or got == expected
    return abs(expected - got) <= 1e-9 * max(1.0, abs(expected))


def main(uri, experiment, run_dir, *flags):
    problems = []
    run_id = os.path.basename(os.path.normpath(run_dir))
    expected = {}  # (key, step) -> value
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            for key, value in record.items():
                if key not in ("step", "epoch", "time"):
                    expected[(key, record["step"])] = number(value)

    name = urllib.parse.quote(experiment)
    experiment_id = call(uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}")["experiment"][
        "experiment_id"]
    runs = call(uri, "/api/2.0/mlflow/runs/search", {
        "experiment_ids": [experiment_id], "filter": f"tags.`dptrain.run_id` = '{run_id}'"}).get("runs", [])
    if len(runs) != 1:
        print(f"want 1 MLflow run tagged dptrain.run_id={run_id}, found {len(runs)}")
        return 1
    run = runs[0]
    mlflow_run = run["info"]["run_id"]
    if run["info"]["status"] != "FINISHED":
        problems.append(f"status {run['info']['status']}, want FINISHED")
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    if tags.get("dptrain.run_id") != run_id or "mlflow.runName" not in tags:
        problems.append(f"tags {tags}")
    options = dict(flag.split("=", 1) for flag in flags if "=" in flag)
    checkpoints = None
    if "--checkpoints" in options:
        checkpoints = check_checkpoints(uri, run, run_id, options["--checkpoints"], options["--model"], problems)
    if "--no-params" not in flags:
        params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
        if params.get("train.batch_size") != "16" or params.get("tracking.mlflow.experiment") != experiment:
            problems.append(f"params train.batch_size={params.get('train.batch_size')} "
                            f"tracking.mlflow.experiment={params.get('tracking.mlflow.experiment')}")
        files = call(uri, f"/api/2.0/mlflow/artifacts/list?run_id={mlflow_run}").get("files", [])
        if "config.json" not in [f["path"] for f in files]:
            problems.append(f"artifacts {files}, want config.json")

    got = {}  # (key, step) -> [values]
    for key in {k for k, _ in expected} | {m["key"] for m in run["data"].get("metrics", [])}:
        query = urllib.parse.urlencode({"run_id": mlflow_run, "metric_key": key, "max_results": 25000})
        for m in call(uri, f"/api/2.0/mlflow/metrics/get-history?{query}").get("metrics", []):
            got.setdefault((key, m.get("step", 0)), []).append(number(m["value"]))
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    duplicated = sorted(k for k, values in got.items() if len(values) > 1)
    wrong = sorted(k for k in set(expected) & set(got) if not same(expected[k], got[k][0]))
    for what, keys in (("missing", missing), ("unexpected", extra), ("duplicated", duplicated), ("wrong", wrong)):
        if keys:
            problems.append(f"{len(keys)} {what} (metric, step): {keys[:5]}")
    steps = len({s for _, s in expected})
    if problems:
        print("MLflow run differs from metrics.jsonl: " + "; ".join(problems))
        return 1
    registered = f"; {checkpoints} checkpoint versions, each one model version" if checkpoints else ""
    print(f"MLflow run {mlflow_run}: {len(expected)} values over {steps} steps, each once and equal{registered}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
