#!/usr/bin/python3
"""The alpha-beta model of data-parallel training: fit the all-reduce's latency (alpha) and inverse bandwidth
(beta) from allreduce_perf at each world size, check the step times it predicts against a scaling study measured
here, and project a cluster that is not here.

  fit:      /usr/bin/python3 bench/perf_model.py fit --ranks 2,3,4 [--hosts 2 --link 1gbit] --out model.json
  validate: /usr/bin/python3 bench/perf_model.py validate --model model.json --study study/results.json
  project:  /usr/bin/python3 bench/perf_model.py project --parameters 124e6 --step-compute-s 0.25 [--gpus-per-node 8 ...]

Ring all-reduce of S bytes over n ranks: T(n, S) = 2(n-1) alpha + 2(n-1)/n S beta. Hierarchical over N nodes of g
ranks: the in-node reduce-scatter and all-gather, 2(g-1) alpha_in + 2(g-1)/g S beta_in, plus the ring over the
nodes of each rank's 1/g of the gradient, 2(N-1) alpha_net + 2(N-1)/N (S/g) beta_net. A step is its compute plus
the part of the all-reduce backward does not hide: step = compute + optimizer + data wait + (1 - hidden) T.
With --hosts, fit also measures the all-reduce between that many namespace hosts of this machine, one rank each
(tests/multinode/hosts.sh; links shaped by --link): the network's alpha and beta, which validate uses for a study's
points on several hosts."""
import argparse
import json
import os
import re
import subprocess
import sys

from namespace_hosts import launcher, mpirun_on_hosts, under_hosts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Published nccl-tests figures for the projection's defaults (all-reduce bus bandwidth at large sizes, and the
# small-message latency): H100 SXM NVLink 4 in one 8-GPU node about 450 GB/s and 10 us; 400 Gb/s InfiniBand NDR,
# one NIC per GPU, about 45 GB/s per GPU across nodes and 20 us.
DEFAULTS = {"nvlink_busbw_gbs": 450.0, "nvlink_alpha_us": 10.0, "network_busbw_gbs": 45.0, "network_alpha_us": 20.0}


def ring_time(n, size, alpha, beta):
    return 0.0 if n < 2 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * size * beta


def hierarchical_time(nodes, per_node, size, inner, outer):
    """inner, outer: (alpha, beta) in the node and between nodes."""
    in_node = ring_time(per_node, size, *inner)
    return in_node + ring_time(nodes, size / per_node, *outer)


def measure(launch, where, build, max_bytes):
    """(size, seconds) of dptrain's all-reduce started by `launch` (an mpirun command), from allreduce_perf's table."""
    command = launch + [os.path.join(build, "bench", "allreduce_perf"), "--min-bytes", "4096",
                        "--max-bytes", str(max_bytes)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"perf_model: allreduce_perf at {where} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    rows = []
    for line in done.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+\d+\s+\|\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\|\s+([\d.]+)", line)
        if m:
            rows.append((int(m.group(1)), float(m.group(2)) * 1e-6))
    if len(rows) < 2:
        raise SystemExit(f"perf_model: no table in allreduce_perf's output at {where}")
    return rows


def fit_line(rows):
    """Least squares t = a + b S, weighted by 1/t so that small and large messages count alike."""
    w = [1.0 / t for _, t in rows]
    sw = sum(w)
    sx = sum(wi * s for wi, (s, _) in zip(w, rows))
    sy = sum(wi * t for wi, (_, t) in zip(w, rows))
    sxx = sum(wi * s * s for wi, (s, _) in zip(w, rows))
    sxy = sum(wi * s * t for wi, (s, t) in zip(w, rows))
    b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return max(0.0, (sy - b * sx) / sw), max(b, 1e-15)


def fit_ring(n, rows, where):
    """alpha and beta of a ring of n ranks from its measured (size, seconds)."""
    a, b = fit_line(rows)
    alpha, beta = a / (2 * (n - 1)), b * n / (2 * (n - 1))
    worst = max(abs(a + b * s - t) / t for s, t in rows)
    print(f"{where}: alpha {alpha * 1e6:.1f} us, beta {beta * 1e9:.3f} ns/B (bus bandwidth {1e-9 / beta:.2f} GB/s), "
          f"worst fit error {worst * 100:.0f} %")
    return {"alpha_s": alpha, "beta_s_per_byte": beta, "busbw_gbs": 1e-9 / beta, "worst_fit_error": worst,
            "measured": rows}


def fit(args, argv):
    if args.hosts and not launcher():
        sys.exit(under_hosts(__file__, argv, args.hosts, 1, args.link))
    model = {"ranks": {}, "hosts": {}}
    for n in [int(r) for r in args.ranks.split(",")]:
        local = ["mpirun", "-np", str(n), "--bind-to", "none", "--oversubscribe"]
        model["ranks"][str(n)] = fit_ring(n, measure(local, f"np={n}", args.build, args.max_bytes), f"np={n}")
    if args.hosts:
        where = f"{args.hosts} hosts x 1 rank" + (f", links {args.link}" if args.link else "")
        rows = measure(mpirun_on_hosts(1, args.hosts), where, args.build, args.max_bytes)
        model["hosts"][str(args.hosts)] = {**fit_ring(args.hosts, rows, where), "link": args.link or "unshaped"}
    with open(args.out, "w") as f:
        json.dump(model, f, indent=1)


def allreduce_time(model, hosts, ranks, size):
    """The model's all-reduce of `size` bytes over `ranks` ranks on `hosts` hosts, or None when it lacks a fit."""
    ring = lambda fit: (fit["alpha_s"], fit["beta_s_per_byte"])  # noqa: E731
    if hosts == 1:
        fit = model["ranks"].get(str(ranks))
        return ring_time(ranks, size, *ring(fit)) if fit else None
    per_host = ranks // hosts
    outer = model.get("hosts", {}).get(str(hosts))
    inner = model["ranks"].get(str(per_host)) if per_host > 1 else {"alpha_s": 0.0, "beta_s_per_byte": 0.0}
    return hierarchical_time(hosts, per_host, size, ring(inner), ring(outer)) if outer and inner else None


def validate(args):
    model = json.load(open(args.model))
    study = json.load(open(args.study))
    parameters = study["study"]["parameters"]
    print("| hosts | ranks | knob | gradient MiB | compute + optimizer ms | all-reduce ms (model) | predicted step ms "
          "| measured step ms | error |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for p in study["points"]:
        hosts = p.get("hosts", 1)
        knob = p["knob"]
        bytes_per = 2 if knob and knob[0] == "ddp.compression" and knob[1] in ("bf16", "fp16") else 4
        size = parameters * bytes_per
        allreduce = allreduce_time(model, hosts, p["ranks"], size) if p["framework"] == "dptrain" else None
        if p["ranks"] < 2 or allreduce is None:
            continue
        busy = p["compute_s"] + p.get("optimizer_s", 0.0)
        predicted = busy + p["data_s"] + (1 - args.hidden) * allreduce
        error = predicted / p["step_s"] - 1
        print(f"| {hosts} | {p['ranks']} | {'='.join(knob) if knob else '-'} | {size / 2**20:.1f} | {busy * 1e3:.1f} | "
              f"{allreduce * 1e3:.1f} | {predicted * 1e3:.1f} | {p['step_s'] * 1e3:.1f} | {error * 100:+.0f} % |")


def project(args):
    size = args.parameters * args.bytes_per_parameter
    inner = (args.nvlink_alpha_us * 1e-6, 1e-9 / args.nvlink_busbw_gbs)
    outer = (args.network_alpha_us * 1e-6, 1e-9 / args.network_busbw_gbs)
    print(f"Projection: {args.parameters:.3g} parameters ({size / 2**20:.0f} MiB of gradients), compute "
          f"{args.step_compute_s * 1e3:.0f} ms per step and GPU, {args.gpus_per_node} GPUs per node, "
          f"{(1 - args.hidden) * 100:.0f} % of the all-reduce exposed")
    print(f"Assumes: NVLink bus bandwidth {args.nvlink_busbw_gbs} GB/s and latency {args.nvlink_alpha_us} us in a "
          f"node, the network's {args.network_busbw_gbs} GB/s per GPU and {args.network_alpha_us} us between nodes "
          "(nccl-tests figures for H100 + NDR by default), a hierarchical all-reduce, the same compute per GPU at "
          "every size (weak scaling), no stragglers and no contention in the network's core.")
    print("| GPUs | nodes | all-reduce ms | step ms | efficiency |")
    print("|---:|---:|---:|---:|---:|")
    gpus = 8
    while gpus <= args.max_gpus:
        per_node = min(args.gpus_per_node, gpus)
        nodes = gpus // per_node
        t = hierarchical_time(nodes, per_node, size, inner, outer)
        step = args.step_compute_s + (1 - args.hidden) * t
        print(f"| {gpus} | {nodes} | {t * 1e3:.2f} | {step * 1e3:.1f} | {args.step_compute_s / step:.3f} |")
        gpus *= 2


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    f = commands.add_parser("fit", help="measure allreduce_perf at each world size and fit alpha, beta")
    f.add_argument("--ranks", default="2,3,4")
    f.add_argument("--build", default=os.path.join(ROOT, "build"))
    f.add_argument("--max-bytes", type=int, default=64 << 20)
    f.add_argument("--out", default="perf-model.json")
    f.add_argument("--hosts", type=int, default=0, help="also fit the all-reduce between this many namespace hosts")
    f.add_argument("--link", default="", metavar="RATE", help="with --hosts: shape each host's link, e.g. 1gbit")
    v = commands.add_parser("validate", help="predicted against measured step times of a scaling study")
    v.add_argument("--model", required=True)
    v.add_argument("--study", required=True, help="results.json of bench/scaling.py")
    v.add_argument("--hidden", type=float, default=0.0, help="share of the all-reduce that backward hides")
    p = commands.add_parser("project", help="step time and efficiency of a cluster from 8 to --max-gpus GPUs")
    p.add_argument("--parameters", type=float, required=True)
    p.add_argument("--bytes-per-parameter", type=float, default=4.0, help="4: fp32 gradients, 2: bf16")
    p.add_argument("--step-compute-s", type=float, required=True, help="forward + backward + optimizer per GPU")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--hidden", type=float, default=0.0, help="share of the all-reduce that backward hides")
    p.add_argument("--max-gpus", type=int, default=1024)
    for key, value in DEFAULTS.items():
        p.add_argument("--" + key.replace("_", "-"), type=float, default=value)
    args = parser.parse_args(argv)
    if args.command == "fit":
        fit(args, argv)
    else:
        {"validate": validate, "project": project}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
