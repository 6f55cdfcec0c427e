#!/usr/bin/env bash
# bench/scaling.py on a tiny mlp at np 1 and 2 with PyTorch DDP beside it: every run is in results.json with its
# figures, the table has both frameworks at both world sizes, the peer's model has dptrain's parameter count, and
# the three plots are PNG files. With `hosts`: 1 and 2 namespace hosts x 1 rank, links shaped to 1gbit; dptrain's
# np 2 runs report 2 nodes.
# Usage: scaling_study_test.sh BUILD [hosts]
set -euo pipefail
build=$1
where=(--ranks 1,2)
[ "${2:-}" = hosts ] && where=(--hosts 1,2 --ranks 1 --link 1gbit)
root=$(cd "$(dirname "$0")/../.." && pwd)
python=/usr/bin/python3
for module in torch h5py matplotlib; do
  "$python" -c "import $module" 2>/dev/null ||
    { echo "scaling_study_test: $python lacks $module: bash scripts/install-deps.sh" >&2; exit 1; }
done
out=$(mktemp -d /tmp/dptrain-scaling-test-XXXXXX)
trap 'rm -rf "$out"' EXIT
"$python" "$root/bench/scaling.py" --build "$build" --model mlp --model-option hidden=32 "${where[@]}" --batch 16 \
  --steps 10 --warmup 5 --repeats 1 --samples 256 --run-timeout 90 --out "$out" > "$out/stdout"
"$python" - "$out" "${2:-}" <<'PY'
import json, sys
out, mode = sys.argv[1], sys.argv[2]
results = json.load(open(f"{out}/results.json"))
runs = results["runs"]
for r in runs:
    assert r["hosts"] == (r["ranks"] if mode == "hosts" else 1), r
    if r["framework"] == "dptrain":
        assert r["nodes"] == r["hosts"], r
assert sorted((r["framework"], r["ranks"]) for r in runs) == [
    ("dptrain", 1), ("dptrain", 2), ("pytorch_ddp", 1), ("pytorch_ddp", 2)], runs
for r in runs:
    assert r["samples_per_s"] > 0 and r["step_s"] > 0, r
    if r["framework"] == "dptrain":
        assert min(r["compute_s"], r["optimizer_s"], r["comm_s"], r["data_s"]) >= 0, r
        assert r["compute_s"] > 0 and r["optimizer_s"] > 0, r
parameters = {r["framework"]: r["parameters"] for r in runs}
assert parameters == {"dptrain": 784 * 32 + 32 + 32 * 10 + 10, "pytorch_ddp": 784 * 32 + 32 + 32 * 10 + 10}, parameters
points = {(p["framework"], p["ranks"]): p for p in results["points"]}
assert points[("dptrain", 1)]["efficiency"] == 1.0 and "vs_pytorch_ddp" in points[("dptrain", 2)], points
assert 0 <= points[("dptrain", 2)]["exposed_comm_fraction"] <= 1, points
assert results["study"]["environment"]["cores"] >= 1 and results["study"]["model"] == "mlp"
for name in ("throughput", "efficiency", "breakdown"):
    with open(f"{out}/{name}.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
table = open(f"{out}/results.md").read()
assert table.count("| dptrain |") == 2 and table.count("| pytorch_ddp |") == 2, table
print(f"scaling_study_test{' on hosts' if mode else ''}: 4 runs, table, plots ok")
PY
[ -n "${2:-}" ] && exit 0
# A run past --run-timeout is stopped with every process it started, tried once more, then the study ends naming it.
set +e
"$python" "$root/bench/scaling.py" --build "$build" --model mlp --model-option hidden=32 --ranks 2 --batch 16 \
  --steps 10 --warmup 5 --repeats 1 --samples 256 --no-peer --run-timeout 0.5 --out "$out/timeout" > "$out/timeout.log" 2>&1
rc=$?
set -e
grep -q "dptrain at np=2 ran past --run-timeout 0.5 s twice" "$out/timeout.log" && [ "$rc" -ne 0 ] ||
  { echo "FAILED: a run past --run-timeout ends the study naming it (exit $rc)"; tail -5 "$out/timeout.log"; exit 1; }
sleep 1
! pgrep -f "$out/timeout" > /dev/null || { echo "FAILED: a run stopped at --run-timeout left processes behind"; exit 1; }
echo "scaling_study_test: a run past --run-timeout is stopped, retried once, and named"
