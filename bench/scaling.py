#!/usr/bin/python3
"""A scaling study in one command: dptrain at each world size (weak or strong scaling, optionally each value of
one config knob), repeated, with PyTorch DDP (gloo) on the same model, batch and data at every point; each step
split from the trainer's own timers into forward + backward, optimizer, exposed communication and data wait.
Writes OUT/results.json (one record per run, with the study, the environment and every figure), OUT/results.md
(medians and spread per point) and OUT/throughput.png, OUT/efficiency.png, OUT/breakdown.png.

  /usr/bin/python3 bench/scaling.py --model resnet18 --ranks 1,2 --batch 32 --out study
  /usr/bin/python3 bench/scaling.py --config study.toml        (the same options as TOML keys, e.g. ranks = [1, 2])
  /usr/bin/python3 bench/scaling.py --hosts 1,2 --ranks 1,2 --link 1gbit   (hosts x ranks per host, as root)

With --hosts, every point runs on namespace hosts of this machine (tests/multinode/hosts.sh: each its own hostname,
address and sshd, mpirun on the first launching over ssh), --ranks ranks on each of that many hosts, and the peer
started the same way; --link shapes every host's link (tc). The hosts share this machine's cores.

Run with Debian's python3 (torch, h5py, matplotlib from scripts/install-deps.sh)."""
import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

from namespace_hosts import launcher, mpirun_on_hosts, under_hosts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "bench", "peers", "pytorch_ddp.py")

# The sample each model takes, as `dptrain data synth` arguments, and the config it trains with.
WORKLOADS = {
    "fashion_cnn": ["--shape", "28,28"],
    "mlp": ["--shape", "784"],
    "resnet18": ["--shape", "3,32,32"],
    "resnet50": ["--shape", "3,64,64"],
}


def synth_args(model, options):
    if model == "gpt":
        return ["--vocab", str(options.get("vocab", 256)), "--context", str(options.get("context", 128))]
    return WORKLOADS[model] + ["--classes", str(options.get("num_classes", 10))]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML file with any of the options below (flags given as well win)")
    parser.add_argument("--model", default="fashion_cnn", help="a dptrain built-in model (dptrain models)")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="model.options entry, e.g. width=32 (repeatable)")
    parser.add_argument("--ranks", default="1,2", help="world sizes, e.g. 1,2,3,4 (with --hosts: ranks per host)")
    parser.add_argument("--hosts", default="", help="host counts, e.g. 1,2: run on that many namespace hosts (root)")
    parser.add_argument("--link", default="", metavar="RATE", help="with --hosts: shape each host's link, e.g. 1gbit")
    parser.add_argument("--mode", choices=["weak", "strong"], default="weak",
                        help="weak: --batch per rank; strong: --batch is the global batch, split over the ranks")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run (a multiple of --warmup)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first; also the logging interval")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (5 or more: fastest and slowest dropped)")
    parser.add_argument("--knob", default="", metavar="KEY=V1,V2", help="sweep one dptrain config key, e.g. "
                        "ddp.bucket_cap_mb=1,25 or ddp.compression=none,bf16")
    parser.add_argument("--samples", type=int, default=2048, help="samples in the synthetic dataset")
    parser.add_argument("--run-timeout", type=float, default=3600.0,
                        help="seconds a run may take; a run past it is stopped and tried once more")
    parser.add_argument("--no-peer", action="store_true", help="skip PyTorch DDP")
    parser.add_argument("--oversubscribe", action="store_true", help="allow more ranks than cores")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default="scaling-study")
    args = parser.parse_args(argv)
    if args.config:
        with open(args.config, "rb") as f:
            table = tomllib.load(f)
        defaults = parser.parse_args([])
        for key, value in table.items():
            name = key.replace("-", "_")
            if not hasattr(args, name):
                parser.error(f"{args.config}: unknown key '{key}'")
            if getattr(args, name) == getattr(defaults, name):
                if name in ("ranks", "hosts") and isinstance(value, list):
                    value = ",".join(str(v) for v in value)
                if name == "model_option" and isinstance(value, dict):
                    value = [f"{k}={v}" for k, v in value.items()]
                setattr(args, name, value)
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (the trainer logs every --warmup steps)")
    if args.link and not args.hosts:
        parser.error("--link shapes the links of --hosts: give --hosts too")
    return args


def host_counts(args):
    return [int(h) for h in str(args.hosts).split(",")] if args.hosts else [1]


def counts(text):
    return [int(v) for v in str(text).split(",")]


def model_options(args):
    options = {}
    for item in args.model_option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    return options


def environment(args):
    def text(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in text(["lscpu"]).splitlines()
                if line.startswith("Model name")), platform.processor())
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "commit": text(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hosts": "namespace hosts on this machine" + (f", links shaped to {args.link}" if args.link else "")
            if args.hosts else "this machine",
            "dptrain": os.path.abspath(os.path.join(args.build, "cli", "dptrain"))}


def mpirun(args, point):
    ranks = point["ranks"]
    if launcher():
        return mpirun_on_hosts(point["ranks_per_host"], point["hosts"])
    command = ["mpirun", "-np", str(ranks), "--bind-to", "none"]
    if args.oversubscribe or ranks > (os.cpu_count() or 1):
        command.append("--oversubscribe")
    return command


def run_bounded(args, command, what):
    """Runs `command` (its output captured) within --run-timeout; one that outlives it is stopped, every process
    of its session (mpirun and the ranks it started), and tried once more. Returns (CompletedProcess, retries)."""
    for attempt in range(2):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        try:
            stdout, stderr = child.communicate(timeout=args.run_timeout)
            return subprocess.CompletedProcess(command, child.returncode, stdout, stderr), attempt
        except subprocess.TimeoutExpired:
            for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
                try:
                    if os.getsid(pid) == child.pid:
                        os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
            stdout, stderr = child.communicate()
            print(f"scaling: {what} ran past --run-timeout {args.run_timeout:g} s"
                  f"{', tried once more' if attempt == 0 else ''}; its last output:\n{(stdout + stderr)[-1500:]}",
                  file=sys.stderr, flush=True)
    raise SystemExit(f"scaling: {what} ran past --run-timeout {args.run_timeout:g} s twice")


def threads(point):
    """Every rank's share of this machine's cores (namespace hosts share them too)."""
    return max(1, (os.cpu_count() or 1) // point["ranks"])


def dptrain_run(args, point, data, work):
    """One dptrain run: samples/s and the per-step breakdown (max over ranks) over the intervals after warm-up."""
    runs = os.path.join(work, "runs")
    config = os.path.join(work, "study.toml")
    with open(config, "w") as f:
        f.write("[data]\ninputs = \"inputs\"\ntargets = \"labels\"\nscale = 1.0\n")
    sets = {"data.train": data, "data.test": "", "model.name": args.model, "train.batch_size": point["batch"],
            "train.optimizer": "adam", "train.lr_schedule": "constant", "train.max_steps": args.steps + args.warmup,
            "train.epochs": 1000, "checkpoint.enabled": "false", "tracking.sinks": '["jsonl"]',
            "tracking.log_every": args.warmup, "run.output_dir": runs, "runtime.threads": threads(point)}
    sets.update({f"model.options.{k}": json.dumps(v) for k, v in point["model_options"].items()})
    if point.get("knob"):
        sets[point["knob"][0]] = point["knob"][1]
    command = mpirun(args, point) + [os.path.join(args.build, "cli", "dptrain"), "train", config]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    done, retries = run_bounded(args, command, f"dptrain at np={point['ranks']}")
    if done.returncode != 0:
        raise SystemExit(f"scaling: dptrain at np={point['ranks']} failed (exit {done.returncode}):\n"
                         + (done.stdout + done.stderr)[-3000:])
    records = []
    for run_id in os.listdir(runs):
        with open(os.path.join(runs, run_id, "metrics.jsonl")) as f:
            records += [json.loads(line) for line in f]
    timed = [r for r in records if "train/samples_per_s" in r and r["step"] > args.warmup]
    if not timed:
        raise SystemExit(f"scaling: no metrics after the warm-up in {runs}")
    mean = lambda key: sum(r[key] for r in timed) / len(timed)  # noqa: E731
    banner = re.search(r"\((\d+) parameters\)", done.stdout)
    nodes = re.search(r"\d+ ranks on (\d+) node", done.stdout)
    # Equal samples per interval: the overall rate is the harmonic mean of the interval rates.
    rate = len(timed) / sum(1.0 / r["train/samples_per_s"] for r in timed)
    step = point["ranks"] * point["batch"] / rate
    return {"samples_per_s": rate, "step_s": step, "compute_s": mean("train/compute_s"),
            "optimizer_s": mean("train/optimizer_s"), "comm_s": mean("train/comm_s"),
            "data_s": mean("train/data_wait_s"),
            "parameters": int(banner.group(1)) if banner else None, "nodes": int(nodes.group(1)) if nodes else 1,
            "retries": retries}


def peer_run(args, point, data):
    command = ["/usr/bin/python3", PEER, "--json", "--world", str(point["ranks"]), "--batch", str(point["batch"]),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--model", args.model,
               "--model-options", json.dumps(point["model_options"]), "--data", data, "--threads", str(threads(point))]
    if launcher():
        command = mpirun(args, point) + command + ["--master-addr", "node0"]
    done, retries = run_bounded(args, command, f"PyTorch DDP at world {point['ranks']}")
    if done.returncode != 0:
        raise SystemExit(f"scaling: PyTorch DDP at world {point['ranks']} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "retries": retries}


def summary(values):
    """Median and spread (max - min) of a point's repeats; with 5 or more the fastest and slowest are dropped."""
    kept = sorted(values)[1:-1] if len(values) >= 5 else sorted(values)
    return statistics.median(kept), kept[-1] - kept[0]


def points(args):
    options = model_options(args)
    knob_values = [None]
    if args.knob:
        key, _, values = args.knob.partition("=")
        knob_values = [(key, v) for v in values.split(",")]
    out = []
    for number, knob in enumerate(knob_values):
        for hosts in host_counts(args):
            for per_host in counts(args.ranks):
                ranks = hosts * per_host
                batch = args.batch if args.mode == "weak" else args.batch // ranks
                if batch < 1:
                    raise SystemExit(f"scaling: a global batch of {args.batch} cannot be split over {ranks} ranks")
                # The peer has no such knob: it runs once per world size, beside the knob's first value.
                out.append({"hosts": hosts, "ranks_per_host": per_host, "ranks": ranks, "batch": batch,
                            "global_batch": batch * ranks, "knob": knob, "model_options": options,
                            "peer": number == 0})
    return out


def aggregate(runs):
    """Per point and framework: median and spread of every figure, efficiency against the point at 1 rank."""
    rows = {}
    for r in runs:
        key = (r["framework"], r["hosts"], r["ranks"], json.dumps(r["knob"]))
        rows.setdefault(key, []).append(r)
    table = []
    for (framework, hosts, ranks, knob), group in sorted(
            rows.items(), key=lambda kv: (json.dumps(kv[0][3]), kv[0][0], kv[0][1], kv[0][2])):
        row = {"framework": framework, "hosts": hosts, "ranks": ranks, "knob": json.loads(knob),
               "repeats": len(group), "batch": group[0]["batch"]}
        for figure in ("samples_per_s", "step_s", "compute_s", "optimizer_s", "comm_s", "data_s"):
            if figure in group[0]:
                row[figure], row[figure + "_spread"] = summary([g[figure] for g in group])
        table.append(row)
    for row in table:
        base = next((b for b in table if b["framework"] == row["framework"] and b["ranks"] == 1
                     and b["knob"] == row["knob"]), None)
        if base:
            row["efficiency"] = row["samples_per_s"] / (base["samples_per_s"] * row["ranks"])
        peer = next((p for p in table if p["framework"] == "pytorch_ddp" and p["ranks"] == row["ranks"]
                     and p["hosts"] == row["hosts"] and p["batch"] == row["batch"]), None)
        if row["framework"] == "dptrain" and peer:
            row["vs_pytorch_ddp"] = row["samples_per_s"] / peer["samples_per_s"]
        if "comm_s" in row:
            row["exposed_comm_fraction"] = row["comm_s"] / row["step_s"]
    return table


def markdown(study, table):
    lines = [f"# Scaling study: {study['model']} ({study['parameters']} parameters), {study['mode']} scaling",
             "", f"{study['command']}", "",
             "| framework | knob | hosts | ranks | batch/rank | samples/s (spread) | efficiency | vs DDP | step ms | "
             "compute ms | optimizer ms | exposed comm ms (share) | data ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        ms = lambda key: f"{r[key] * 1e3:.1f}" if key in r else "-"  # noqa: E731
        knob = f"{r['knob'][0]}={r['knob'][1]}" if r["knob"] else "-"
        comm = f"{r['comm_s'] * 1e3:.1f} ({r['exposed_comm_fraction'] * 100:.1f} %)" if "comm_s" in r else "-"
        lines.append(f"| {r['framework']} | {knob} | {r['hosts']} | {r['ranks']} | {r['batch']} | {r['samples_per_s']:.1f} "
                     f"(±{r['samples_per_s_spread'] / 2:.1f}) | {r.get('efficiency', float('nan')):.3f} | "
                     f"{r.get('vs_pytorch_ddp', float('nan')):.3f} | {ms('step_s')} | {ms('compute_s')} | {ms('optimizer_s')} | "
                     f"{comm} | "
                     f"{ms('data_s')} |")
    return "\n".join(lines) + "\n"


def plots(table, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = {}
    for r in table:
        label = r["framework"] + (f" {r['knob'][0]}={r['knob'][1]}" if r["knob"] else "")
        if len({t["hosts"] for t in table}) > 1:
            label += f" {r['hosts']} host(s)"
        series.setdefault(label, []).append(r)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, rows in series.items():
        ax.errorbar([r["ranks"] for r in rows], [r["samples_per_s"] for r in rows],
                    yerr=[r["samples_per_s_spread"] / 2 for r in rows], marker="o", label=label, capsize=3)
        base = next((r for r in rows if r["ranks"] == 1), None)
        if base:
            ax.plot([r["ranks"] for r in rows], [base["samples_per_s"] * r["ranks"] for r in rows], "k:", lw=0.8)
    ax.set(xlabel="ranks", ylabel="samples/s", title="Throughput (dotted: ideal)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=90)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, rows in series.items():
        ax.plot([r["ranks"] for r in rows], [r.get("efficiency", float("nan")) for r in rows], marker="o", label=label)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="ranks", ylabel="efficiency", title="Scaling efficiency", ylim=(0, 1.1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "efficiency.png"), dpi=90)
    mine = [r for r in table if r["framework"] == "dptrain"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = [f"np{r['ranks']}" + (f"\n{r['hosts']}h" if r["hosts"] > 1 else "") + (f"\n{r['knob'][1]}" if r["knob"] else "")
             for r in mine]
    bottom = [0.0] * len(mine)
    for key, label in (("compute_s", "forward + backward"), ("optimizer_s", "optimizer"), ("comm_s", "exposed comm"),
                       ("data_s", "data wait")):
        values = [r[key] * 1e3 for r in mine]
        ax.bar(names, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    other = [max(0.0, r["step_s"] * 1e3 - b) for r, b in zip(mine, bottom)]
    ax.bar(names, other, bottom=bottom, label="other")
    ax.set(ylabel="ms per step", title="dptrain step breakdown")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "breakdown.png"), dpi=90)


def main(argv):
    args = parse_args(argv)
    if args.hosts and not launcher():
        sys.exit(under_hosts(__file__, argv, max(host_counts(args)), max(counts(args.ranks)), args.link))
    os.makedirs(args.out, exist_ok=True)
    if os.geteuid() == 0:
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    os.environ["OMP_NUM_THREADS"] = "1"
    dptrain = os.path.join(args.build, "cli", "dptrain")
    if not os.access(dptrain, os.X_OK):
        raise SystemExit(f"scaling: {dptrain} is missing: bash scripts/build.sh dptrain")
    options = model_options(args)
    data = os.path.abspath(os.path.join(args.out, "data.h5"))
    subprocess.run([dptrain, "data", "synth", "--out", data, "--samples", str(args.samples)]
                   + synth_args(args.model, options), check=True, capture_output=True)
    study = {"model": args.model, "model_options": options, "mode": args.mode, "batch": args.batch,
             "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "knob": args.knob,
             "command": "/usr/bin/python3 bench/scaling.py " + " ".join(argv), "environment": environment(args)}
    plan = points(args)
    total = args.repeats * (len(plan) + (0 if args.no_peer else sum(p["peer"] for p in plan)))
    runs, done = [], 0
    for repeat in range(args.repeats):
        for point in plan:  # repeats interleaved: a slow minute of the machine spreads over every point
            frameworks = ["dptrain"] + ([] if args.no_peer or not point["peer"] else ["pytorch_ddp"])
            for framework in frameworks:
                done += 1
                with tempfile.TemporaryDirectory(prefix="dptrain-scaling-") as work:
                    figures = (dptrain_run(args, point, data, work) if framework == "dptrain"
                               else peer_run(args, point, data))
                runs.append({**point, "framework": framework, "repeat": repeat, **figures})
                where = f" on {point['hosts']} hosts" if args.hosts else ""
                print(f"[{done}/{total}] {framework} np={point['ranks']}{where} batch {point['batch']}/rank"
                      f"{' ' + '='.join(point['knob']) if point['knob'] else ''} repeat {repeat + 1}: "
                      f"{figures['samples_per_s']:.1f} samples/s", file=sys.stderr, flush=True)
    study["parameters"] = next(r["parameters"] for r in runs if r["framework"] == "dptrain")
    table = aggregate(runs)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"study": study, "runs": runs, "points": table}, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown(study, table))
    plots(table, args.out)
    print(markdown(study, table))


if __name__ == "__main__":
    main(sys.argv[1:])
