# Reads a dptrain run's offline W&B run back with the wandb package's own reader (`wandb leet inspect --json`, the
# records of each .wandb transaction log under RUN_DIR/wandb) and checks it against what the run recorded: every
# metric of RUN_DIR/wandb-spool.jsonl (and RUN_DIR/metrics.jsonl, when it is complete) exactly once at its step
# with the same value, every offline run complete, the config flattened, the tags, the final status, and one
# version of the model artifact model-<run id> per checkpoint version the spool holds (manifest.json byte for byte the one in STORE, every blob a
# file:// reference into the store, `latest` on each, `best` last on the store's best), which are all the versions
# of the run in STORE unless --killed (a run killed may have published a version it did not get to spool).
# Usage: wandb_check.py RUN_DIR STORE --status FINISHED|FAILED [--tags a,b] [--killed]
# Prints what differs; exit 1 when anything does.
import argparse
import glob
import json
import math
import os
import subprocess
import sys


def records(run_file_dir):
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", run_file_dir],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def number(value):
    return float(value) if isinstance(value, str) else value


def same(a, b):
    a, b = number(a), number(b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-12)


def flatten(value, prefix=""):
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    out = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("store")
    parser.add_argument("--status", required=True)
    parser.add_argument("--tags", default="")
    parser.add_argument("--killed", action="store_true", help="metrics.jsonl and the store may lack the last entries")
    args = parser.parse_args()
    problems = []
    with open(os.path.join(args.run_dir, "wandb-spool.jsonl")) as f:
        spool = [json.loads(line) for line in f]
    run_id = spool[0]["run"]["id"]

    expected = {}  # (key, step) -> value
    for entry in spool[1:]:
        for key, value in entry.get("metrics", {}).items():
            expected[(key, entry["step"])] = value
    if not args.killed:
        with open(os.path.join(args.run_dir, "metrics.jsonl")) as f:
            jsonl = {}
            for line in f:
                row = json.loads(line)
                for key, value in row.items():
                    if key not in ("step", "epoch", "time"):
                        jsonl[(key, row["step"])] = value
        if jsonl.keys() != expected.keys():
            problems.append(f"wandb-spool.jsonl and metrics.jsonl differ in {len(jsonl.keys() ^ expected.keys())} "
                            "(metric, step) pairs")

    dirs = sorted(glob.glob(os.path.join(args.run_dir, "wandb", f"offline-run-*-{run_id}-spool-*")),
                  key=lambda d: int(d.rsplit("-", 1)[1]))
    if not dirs:
        problems.append(f"no offline W&B run of {run_id} under {args.run_dir}/wandb")
    seen = {}  # (key, step) -> [values]
    artifacts, runs, exits, summary = [], [], [], {}
    for run_file_dir in dirs:
        found = records(run_file_dir)
        if not any(record["type"] == "exit" for record in found):
            problems.append(f"{run_file_dir} was cut short (no exit record): `wandb sync` would upload it as well")
        for record in found:
            kind = record["type"]
            if kind == "history":
                item = record["history"]["item"]
                step = record["history"]["step"]["num"]
                for key, value in item.items():
                    if not key.startswith("_") and key != "epoch":
                        seen.setdefault((key, step), []).append(value)
            elif kind == "artifact":
                artifacts.append(record["artifact"])
            elif kind == "run":
                runs.append(record["run"])
            elif kind == "exit":
                exits.append(record["exit"].get("exit_code", 0))
            elif kind == "summary":
                summary.update(record["summary"].get("update", {}))

    for pair, value in sorted(expected.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        got = seen.get(pair, [])
        if len(got) != 1:
            problems.append(f"{pair[0]} at step {pair[1]} is logged {len(got)} times, want once")
        elif not same(got[0], value):
            problems.append(f"{pair[0]} at step {pair[1]} is {got[0]}, the run recorded {value}")
    for pair in seen.keys() - expected.keys():
        problems.append(f"{pair[0]} at step {pair[1]} is logged but was never recorded")

    want_exit = 0 if args.status == "FINISHED" else 1
    if not exits or exits[-1] != want_exit:
        problems.append(f"exit codes {exits}, want the last one {want_exit}")
    if summary.get("dptrain/status") != args.status:
        problems.append(f"summary dptrain/status is {summary.get('dptrain/status')!r}, want {args.status!r}")
    want_tags = sorted(t for t in args.tags.split(",") if t)
    for run in runs:
        config = {k: v for k, v in run.get("config", {}).get("update", {}).items() if k != "_wandb"}
        if run.get("run_id") != run_id:
            problems.append(f"W&B run id {run.get('run_id')}, want {run_id}")
        if sorted(run.get("tags", [])) != want_tags:
            problems.append(f"tags {run.get('tags')}, want {want_tags}")
        manifest_config = None
        for name in sorted(os.listdir(os.path.join(args.store, "versions"))):
            with open(os.path.join(args.store, "versions", name, "manifest.json")) as f:
                state = json.load(f)["state"]
            if state["run_id"] == run_id:
                manifest_config = flatten(state["config"])
        if manifest_config is not None and config != manifest_config:
            diff = sorted(config.keys() ^ manifest_config.keys()) or \
                sorted(k for k in config if config[k] != manifest_config[k])
            problems.append(f"config differs from the checkpoint's resolved config at {diff[:5]}")

    published = {}  # version -> manifest bytes, for the versions the spool holds
    for entry in spool[1:]:
        if "checkpoint" in entry:
            version = entry["checkpoint"]["version"]
            with open(os.path.join(args.store, "versions", version, "manifest.json"), "rb") as f:
                published[version] = f.read()
    in_store = set()
    for name in os.listdir(os.path.join(args.store, "versions")):
        with open(os.path.join(args.store, "versions", name, "manifest.json")) as f:
            if json.load(f)["state"]["run_id"] == run_id:
                in_store.add(name)
    if not args.killed and in_store != published.keys():
        problems.append(f"the spool holds versions {sorted(published)}, the store {sorted(in_store)}")
    logged = [json.loads(a["metadata"])["version"] for a in artifacts]
    if sorted(logged) != sorted(published) or len(set(logged)) != len(logged):
        problems.append(f"artifact versions {logged}, want each of {sorted(published)} once")
    best = None
    for artifact, version in zip(artifacts, logged):
        if artifact["name"] != f"model-{run_id}" or artifact["type"] != "model":
            problems.append(f"artifact {artifact['name']} of type {artifact['type']}, want model-{run_id}, model")
        if "latest" not in artifact.get("aliases", []):
            problems.append(f"{version} was logged without the alias latest: {artifact.get('aliases')}")
        if "best" in artifact.get("aliases", []):
            best = version
        contents = {c["path"]: c for c in artifact["manifest"]["contents"]}
        copy = contents.get("manifest.json", {}).get("local_path", "")
        if not os.path.isfile(copy) or open(copy, "rb").read() != published.get(version):
            problems.append(f"{version}'s manifest.json ({copy}) is not the store's manifest")
        for file in json.loads(published.get(version, b'{"files": []}'))["files"]:
            blob = os.path.join(os.path.abspath(args.store), "blobs", "sha256", file["sha256"])
            if contents.get(file["name"], {}).get("ref") != "file://" + blob or not os.path.isfile(blob):
                problems.append(f"{version}'s {file['name']} is not a reference to {blob}")
    store_best_path = os.path.join(args.store, "aliases", "best")
    store_best = open(store_best_path).read().strip() if os.path.exists(store_best_path) else None
    if store_best in published and best != store_best:
        problems.append(f"the last version logged with alias best is {best}, the store's best is {store_best}")

    for problem in problems[:30]:
        print(problem)
    if problems:
        return 1
    steps = sorted({step for _, step in expected})
    print(f"{len(expected)} metric values at {len(steps)} steps once each in {len(dirs)} offline run(s); "
          f"{len(logged)} checkpoint versions as model artifacts (best {best}); status {args.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
