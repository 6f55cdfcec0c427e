#!/usr/bin/python3
"""The alpha-beta model of data-parallel training: fit the all-reduce's latency (alpha) and inverse bandwidth
(beta) from allreduce_perf at each world size, check the step times it predicts against a scaling study measured
here, and project a cluster that is not here.

  fit:      /usr/bin/python3 bench/perf_model.py fit --ranks 2,3,4 --out model.json
  validate: /usr/bin/python3 bench/perf_model.py validate --model model.json --study study/results.json
  project:  /usr/bin/python3 bench/perf_model.py project --parameters 124e6 --step-compute-s 0.25 [--gpus-per-node 8 ...]

Ring all-reduce of S bytes over n ranks: T(n, S) = 2(n-1) alpha + 2(n-1)/n S beta. Hierarchical over N nodes of g
ranks: the in-node reduce-scatter and all-gather, 2(g-1) alpha_in + 2(g-1)/g S beta_in, plus the ring over the
nodes of each rank's 1/g of the gradient, 2(N-1) alpha_net + 2(N-1)/N (S/g) beta_net. A step is its compute plus
the part of the all-reduce backward does not hide: step = compute + (1 - hidden) T."""
import argparse
import json
import os
import re
import subprocess
import sys

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


def measure(ranks, build, max_bytes):
    """(size, seconds) of dptrain's all-reduce at `ranks`, from allreduce_perf's table."""
    command = ["mpirun", "-np", str(ranks), "--bind-to", "none", "--oversubscribe",
               os.path.join(build, "bench", "allreduce_perf"), "--min-bytes", "4096", "--max-bytes", str(max_bytes)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"perf_model: allreduce_perf at np={ranks} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    rows = []
    for line in done.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+\d+\s+\|\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\|\s+([\d.]+)", line)
        if m:
            rows.append((int(m.group(1)), float(m.group(2)) * 1e-6))
    if len(rows) < 2:
        raise SystemExit(f"perf_model: no table in allreduce_perf's output at np={ranks}")
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


def fit(args):
    model = {"ranks": {}}
    for n in [int(r) for r in args.ranks.split(",")]:
        rows = measure(n, args.build, args.max_bytes)
        a, b = fit_line(rows)
        alpha, beta = a / (2 * (n - 1)), b * n / (2 * (n - 1))
        worst = max(abs(a + b * s - t) / t for s, t in rows)
        model["ranks"][str(n)] = {"alpha_s": alpha, "beta_s_per_byte": beta, "busbw_gbs": 1e-9 / beta,
                                  "worst_fit_error": worst, "measured": rows}
        print(f"np={n}: alpha {alpha * 1e6:.1f} us, beta {beta * 1e9:.3f} ns/B (bus bandwidth {1e-9 / beta:.2f} GB/s), "
              f"worst fit error {worst * 100:.0f} %")
    with open(args.out, "w") as f:
        json.dump(model, f, indent=1)


def validate(args):
    model = json.load(open(args.model))["ranks"]
    study = json.load(open(args.study))
    parameters = study["study"]["parameters"]
    print(f"| ranks | knob | gradient MiB | compute ms | all-reduce ms (model) | predicted step ms | measured step ms "
          f"| error |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for p in study["points"]:
        if p["framework"] != "dptrain" or p["ranks"] < 2 or str(p["ranks"]) not in model:
            continue
        knob = p["knob"]
        bytes_per = 2 if knob and knob[0] == "ddp.compression" and knob[1] in ("bf16", "fp16") else 4
        size = parameters * bytes_per
        m = model[str(p["ranks"])]
        allreduce = ring_time(p["ranks"], size, m["alpha_s"], m["beta_s_per_byte"])
        predicted = p["compute_s"] + p["data_s"] + (1 - args.hidden) * allreduce
        error = predicted / p["step_s"] - 1
        print(f"| {p['ranks']} | {'='.join(knob) if knob else '-'} | {size / 2**20:.1f} | {p['compute_s'] * 1e3:.1f} | "
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
    {"fit": fit, "validate": validate, "project": project}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
