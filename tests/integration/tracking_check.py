"""Reads dptrain's tracking output back through the real backends, for tracking_test.sh.

  tensorboard RUN_DIR      TensorBoard's EventAccumulator finds every scalar of RUN_DIR/metrics.jsonl (step, value)
  special DIR              the fixture's NaN, +Inf and -Inf read back from its event file
  prometheus URL DASHBOARD RUN_ID RANKS
                           Prometheus at URL has dptrain_steps_total for every rank of RUN_ID, the fixture's
                           special values, and data for every query of the Grafana DASHBOARD
Exits non-zero with a line per problem. Every wait is bounded.
"""
import json
import math
import struct
import sys
import time
import urllib.parse
import urllib.request

problems = []


def accumulator(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(directory, size_guidance={"scalars": 0})
    events.Reload()
    return events


def as_float32(value):
    if isinstance(value, str):
        value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return struct.unpack("f", struct.pack("f", value))[0]


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_tensorboard(run_dir):
    events = accumulator(run_dir)
    tags = set(events.Tags()["scalars"])
    expected = 0
    with open(f"{run_dir}/metrics.jsonl") as lines:
        for line in lines:
            record = json.loads(line)
            for tag, value in record.items():
                if tag in ("step", "epoch", "time"):
                    continue
                expected += 1
                found = [e for e in events.Scalars(tag) if e.step == record["step"]] if tag in tags else []
                if not found:
                    problems.append(f"{tag} at step {record['step']} is missing from the event file")
                elif not any(same(e.value, as_float32(value)) for e in found):
                    problems.append(f"{tag} at step {record['step']}: event file has {found[0].value}, jsonl {value}")
    stored = sum(len(events.Scalars(tag)) for tag in tags)
    if stored != expected:
        problems.append(f"the event file holds {stored} scalars, metrics.jsonl {expected}")
    print(f"tensorboard: {expected} scalars of {len(tags)} tags read back")


def check_special(directory):
    events = accumulator(directory)
    want = {"special/nan": math.nan, "special/pos_inf": math.inf, "special/neg_inf": -math.inf}
    for tag, value in want.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        if [step for step, _ in got] != [1, 2, 3] or not all(same(v, value) for _, v in got):
            problems.append(f"{tag}: read back {got}, want {value} at steps 1, 2, 3")
    print("tensorboard: NaN, +Inf and -Inf read back")


def query(url, promql):
    answer = urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10)
    body = json.load(answer)
    return body["data"]["result"] if body.get("status") == "success" else []


def wait_for(url, promql, good, deadline):
    """Polls until good(result) or the deadline; returns the last result."""
    while True:
        try:
            result = query(url, promql)
        except OSError:
            result = []
        if good(result) or time.monotonic() > deadline:
            return result
        time.sleep(1)


def check_prometheus(url, dashboard, run_id, ranks):
    deadline = time.monotonic() + 120
    steps = wait_for(url, f'dptrain_steps_total{{run_id="{run_id}"}}',
                     lambda r: len(r) == ranks and all(float(s["value"][1]) > 0 for s in r), deadline)
    if len(steps) != ranks:
        problems.append(f"dptrain_steps_total of run {run_id}: {len(steps)} ranks answered, want {ranks}")
    else:
        print("prometheus: dptrain_steps_total " + ", ".join(
            f"rank {s['metric']['rank']} = {s['value'][1]}" for s in sorted(steps, key=lambda s: s["metric"]["rank"])))
    for name, text in (("nan", "NaN"), ("pos_inf", "+Inf"), ("neg_inf", "-Inf")):
        result = wait_for(url, f"dptrain_special_{name}", lambda r: len(r) == 1, deadline)
        if [s["value"][1] for s in result] != [text]:
            problems.append(f"dptrain_special_{name}: Prometheus answered {result}, want {text}")
    with open(dashboard) as f:
        panels = json.load(f)["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for expr in exprs:
        promql = expr.replace("$run_id", run_id).replace("$__rate_interval", "30s")
        if not wait_for(url, promql, lambda r: len(r) > 0, deadline):
            problems.append(f"dashboard query returned no data: {promql}")
    print(f"prometheus: {len(exprs)} dashboard queries checked")


def main():
    command = sys.argv[1]
    if command == "tensorboard":
        check_tensorboard(sys.argv[2])
    elif command == "special":
        check_special(sys.argv[2])
    elif command == "prometheus":
        check_prometheus(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown command {command}")
    for problem in problems:
        print("problem: " + problem)
    sys.exit(1 if problems else 0)


main()
