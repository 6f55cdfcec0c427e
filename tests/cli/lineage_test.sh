#!/usr/bin/env bash
# End-to-end checks of a model's life after training: --init-from (continual learning on other data, with and
# without the optimizer's state; another model refused), the parent every manifest records, `ckpt lineage` (text,
# JSON, a missing and a changed parent), `dptrain eval` (data.test and the store alone; per-class accuracy,
# confusion matrix, eval.json, confusion.png, metric records; the same at 2 ranks), a finished run resumed
# (nothing published) and an epoch-boundary resume (no second evaluation), and every read path of a version
# checking sha256 and md5.
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
enter_scratch_dir
py=/usr/bin/python3

tiny_data "$dptrain" || { echo "FAILED: cannot make test data"; exit 1; }
# Two halves of the data, as two datasets a model learns one after the other.
$py - <<'PY' || { echo "FAILED: cannot split the test data"; exit 1; }
import h5py
with h5py.File("train.h5") as f:
    for name, rows in (("a.h5", slice(0, 150)), ("b.h5", slice(150, 300))):
        with h5py.File(name, "w") as out:
            for key in f:
                out.create_dataset(key, data=f[key][rows])
PY
cat >> config.toml <<'TOML'
[model]
name = "mlp"
[tracking]
sinks = ["jsonl"]
TOML
one_epoch=(--set train.epochs=1)

# manifest_field STORE VERSION PYTHON-EXPRESSION-OF-m: a field of a version's manifest.
manifest_field() {
  $py -c 'import json, sys; m = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$1/versions/$2/manifest.json" "$3"
}
# optimizer_step STORE VERSION: Adam's step count of the first parameter (state.0.step in optimizer.safetensors).
optimizer_step() {
  local blob
  blob=$(manifest_field "$1" "$2" '[f["sha256"] for f in m["files"] if f["name"] == "optimizer.safetensors"][0]')
  $py - "$1/blobs/sha256/$blob" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
entry = json.loads(data[8:8 + n])["state.0.step"]
begin = 8 + n + entry["data_offsets"][0]
print(struct.unpack("<q", data[begin:begin + 8])[0])
PY
}
# max_model_change A B: the largest |a - b| over the model tensors of two version directories (ckpt diff).
max_model_change() {
  "$dptrain" ckpt diff "$1" "$2" | $py -c '
import sys
changes = [float(l.rsplit(":", 1)[1]) for l in sys.stdin if l.strip().startswith("model/")]
print(max(changes) if changes else 0.0)'
}

# 1. A fresh run on the first half records no parent.
output=$(timeout 120 "$dptrain" train config.toml "${one_epoch[@]}" --set data.train=a.h5 --set checkpoint.dir=store-a 2>&1)
parent=$(manifest_field store-a v000001 'm["state"]["parent"]')
if [ $? -eq 0 ] && [ "$parent" = "None" ]; then ok "a fresh run records no parent"
else bad "a fresh run records no parent ($parent)" "$output"; fi
run_a=$(manifest_field store-a v000001 'm["state"]["run_id"]')

# 2. --init-from on the second half (2 ranks): the parent's weights, a new run id, a fresh step counter, the parent
#    recorded with its manifest's sha256. At a tiny learning rate one step keeps the weights next to the parent's,
#    far from a fresh initialisation.
output=$(timeout 300 "${mpirun[@]}" -np 2 "$dptrain" train config.toml --set data.train=b.h5 --set checkpoint.dir=store-b \
  --set train.lr=1e-9 --set train.max_steps=1 --init-from latest --init-from-dir store-a 2>&1)
rc=$?
store_a=$(realpath store-a)
expected="{'store': '$store_a', 'version': 'v000001', 'manifest_sha256': '$(sha256sum store-a/versions/v000001/manifest.json | cut -d' ' -f1)', 'reason': 'init-from'}"
parent=$(manifest_field store-b v000001 '{k: m["state"]["parent"][k] for k in ("store", "version", "manifest_sha256", "reason")}')
run_b=$(manifest_field store-b v000001 'm["state"]["run_id"]')
step=$(manifest_field store-b v000001 'm["state"]["step"]')
near=$(max_model_change store-a/versions/v000001 store-b/versions/v000001)
if [ $rc -eq 0 ] && [ "$parent" = "$expected" ] && [ "$run_b" != "$run_a" ] && [ "$step" = 1 ] \
   && grep -q "a new run from v000001 in $store_a" <<< "$output" \
   && $py -c "import sys; sys.exit(not float('$near') < 1e-6)"; then
  ok "--init-from at 2 ranks: parent recorded, new run, step 1, weights within $near of the parent's"
else bad "--init-from at 2 ranks (step $step, change $near)" "$output"$'\n'"$parent"$'\n'"$expected"; fi
"$dptrain" train config.toml --set data.train=b.h5 --set checkpoint.dir=fresh --set train.lr=1e-9 \
  --set train.max_steps=1 > /dev/null 2>&1
far=$(max_model_change store-a/versions/v000001 fresh/versions/v000001)
if $py -c "import sys; sys.exit(not float('$far') > 1e-2)"; then ok "a fresh initialisation is $far from the parent"
else bad "a fresh initialisation differs from the parent ($far)" ""; fi

# 3. The optimizer's state comes along only with --init-optimizer (Adam's step count goes on from the parent's).
parent_steps=$(optimizer_step store-a v000001)
"$dptrain" train config.toml --set data.train=b.h5 --set checkpoint.dir=store-c --set train.max_steps=1 \
  --init-from "$store_a/versions/v000001" --init-optimizer > init-optimizer.log 2>&1
with=$(optimizer_step store-c v000001)
without=$(optimizer_step store-b v000001)
if [ "$with" = $((parent_steps + 1)) ] && [ "$without" = 1 ]; then
  ok "--init-optimizer continues Adam's step count ($parent_steps -> $with; without it: $without)"
else bad "--init-optimizer ($parent_steps -> $with, without: $without)" "$(cat init-optimizer.log)"; fi

# 4. Another model, or another shape, is one error naming the tensor (and both shapes).
expect_error "--init-from a model that lacks a tensor" \
  "checkpoint v000001 in .*store-a has tensor 'fc[12].(weight|bias)' of shape \[[0-9, ]+\] that model 'gpt' lacks" \
  "$dptrain" train config.toml --set model.name=gpt --set checkpoint.dir=store-x --init-from v1 --init-from-dir store-a
expect_error "--init-from a model with more tensors" "checkpoint v000001 in .*store-a has no tensor 'conv1.weight' for model 'fashion_cnn'" \
  "$dptrain" train config.toml --set model.name=fashion_cnn --set checkpoint.dir=store-x --init-from v1 --init-from-dir store-a
expect_error "--init-from another shape" "tensor 'fc1.weight' has shape \[256, 784\] but the model expects \[32, 784\]" \
  "$dptrain" train config.toml --set model.options.hidden=32 --set checkpoint.dir=store-x --init-from v1 --init-from-dir store-a
expect_error "--init-from with --resume" "exclude each other: --resume continues a run" \
  "$dptrain" train config.toml --set checkpoint.dir=store-x --resume latest --init-from v1
expect_error "--init-from a missing version" "no checkpoint version v7 in .*store-a" \
  "$dptrain" train config.toml --set checkpoint.dir=store-x --init-from v7 --init-from-dir store-a

# 5. A resume records its parent with reason resume; the lineage runs back through both parents, with the
#    config's changes between generations.
output=$(timeout 120 "$dptrain" train config.toml --set data.train=b.h5 --set checkpoint.dir=store-b --set train.lr=1e-9 \
  --set train.max_steps=3 --resume latest 2>&1)
reason=$(manifest_field store-b v000002 'm["state"]["parent"]["reason"] + " " + m["state"]["parent"]["version"]')
if [ "$reason" = "resume v000001" ]; then ok "a resume records its parent"; else bad "a resume records its parent ($reason)" "$output"; fi
lineage=$("$dptrain" ckpt lineage latest --dir store-b 2>&1)
rc=$?
commit=$(manifest_field store-a v000001 'm["state"]["build"]["git_commit"]')
digest_b=$(sha256sum b.h5 | cut -d' ' -f1)
if [ $rc -eq 0 ] && grep -q "3 generation(s)" <<< "$lineage" \
   && grep -q "^v000002  $(realpath store-b)  (parent v000001 in $(realpath store-b), by --resume)" <<< "$lineage" \
   && grep -q "^v000001  $(realpath store-b)  (parent v000001 in $store_a, by --init-from)" <<< "$lineage" \
   && grep -q "^v000001  $store_a  (the first version: a fresh run)" <<< "$lineage" \
   && grep -q "train.max_steps: 1 -> 3" <<< "$lineage" && grep -q "data.train: a.h5 -> b.h5" <<< "$lineage" \
   && grep -q "run $run_a" <<< "$lineage" && grep -q "run $run_b" <<< "$lineage" \
   && grep -q "data   b.h5 sha256 $digest_b md5 $(md5sum b.h5 | cut -d' ' -f1)" <<< "$lineage" \
   && grep -q "commit $commit" <<< "$lineage"; then ok "ckpt lineage: three generations, run ids, data, commit, config changes"
else bad "ckpt lineage" "$lineage"; fi
json=$("$dptrain" ckpt lineage latest --dir store-b --json | $py -c '
import json, sys
chain = json.load(sys.stdin)
print(len(chain), [g["version"] for g in chain], [g["parent"]["reason"] if g["parent"] else None for g in chain],
      [c["key"] for c in chain[1]["config_changes"]], chain[2]["data"]["files"][0]["path"], chain[0]["problem"])')
if [ "$json" = "3 ['v000002', 'v000001', 'v000001'] ['resume', 'init-from', None] ['checkpoint.dir', 'data.train', 'train.epochs', 'train.lr', 'train.max_steps'] a.h5 None" ]; then
  ok "ckpt lineage --json"
else bad "ckpt lineage --json" "$json"; fi

# 6. A changed parent manifest and a missing parent are named, and the chain up to them is still printed.
cp -r store-a store-a.saved
echo >> store-a/versions/v000001/manifest.json
lineage=$("$dptrain" ckpt lineage latest --dir store-b 2>&1)
if [ $? -eq 0 ] && grep -q "MISSING OR DAMAGED: its manifest has sha256 .*, not the .* that v000001 recorded" <<< "$lineage" \
   && grep -q "^v000002" <<< "$lineage"; then ok "ckpt lineage names a changed parent"
else bad "ckpt lineage names a changed parent" "$lineage"; fi
rm -rf store-a
lineage=$("$dptrain" ckpt lineage latest --dir store-b 2>&1)
if [ $? -eq 0 ] && grep -q "MISSING OR DAMAGED: cannot be read: no checkpoint version v000001 in $store_a" <<< "$lineage" \
   && grep -q "3 generation(s)" <<< "$lineage"; then ok "ckpt lineage names a missing parent"
else bad "ckpt lineage names a missing parent" "$lineage"; fi
mv store-a.saved store-a

# 7. eval needs data.test and the store only; per-class accuracy and the confusion matrix agree with each other
#    and with the accuracy, in the output, eval.json, confusion.png and the metric records; 2 ranks agree with 1.
no_train=(--set data.train=missing.h5 --set checkpoint.enabled=false)
output=$(timeout 120 "$dptrain" eval config.toml --dir store-a --checkpoint v1 "${no_train[@]}" 2>&1)
rc=$?
run_dir=$(grep -oE 'eval run [0-9a-f-]+: [^ ]+/eval.json' <<< "$output" | sed 's/.*: //; s#/eval.json##')
check=$($py - "$run_dir" <<'PY' 2>&1
import json, sys
from PIL import Image
d = sys.argv[1]
e = json.load(open(d + "/eval.json"))
c = e["confusion"]
assert e["classes"] == 10 and len(c) == 10 and all(len(r) == 10 for r in c), "10 x 10"
assert sum(map(sum, c)) == e["samples"] == 300, "counts sum to the samples"
assert abs(sum(c[i][i] for i in range(10)) / 300 - e["accuracy"]) < 1e-9, "trace / samples = accuracy"
for i in range(10):
    if e["class_samples"][i]:
        assert abs(e["class_accuracy"][i] - c[i][i] / sum(c[i])) < 1e-9, "class accuracy"
assert e["checkpoint"]["version"] == "v000001" and e["checkpoint"]["step"] == 10, "checkpoint"
png = Image.open(d + "/confusion.png")
assert png.format == "PNG" and png.size[0] > 480 and png.size == (png.size[1], png.size[1]), png.size
records = [json.loads(l) for l in open(d + "/metrics.jsonl")]
values = {k: v for r in records for k, v in r.items()}
assert abs(values["eval/accuracy"] - e["accuracy"]) < 1e-9 and "eval/loss" in values, "eval/accuracy"
assert sum(1 for k in values if k.startswith("eval/class_accuracy/")) == sum(1 for n in e["class_samples"] if n), "classes"
assert all(r["step"] == 10 for r in records), "at the checkpoint's step"
print("ok", e["accuracy"])
PY
)
if [ $rc -eq 0 ] && grep -q '^ok' <<< "$check" && grep -q "class  samples  accuracy  predicted as 0..9" <<< "$output"; then
  ok "eval without training data: per-class accuracy, confusion matrix, eval.json, confusion.png, metrics"
else bad "eval without training data" "$output"$'\n'"$check"; fi
one=$(grep -E '^ +[0-9]+ +[0-9]+ ' <<< "$output")
output2=$(timeout 120 "${mpirun[@]}" -np 2 "$dptrain" eval config.toml --dir store-a --checkpoint v1 "${no_train[@]}" 2>&1)
two=$(grep -E '^ +[0-9]+ +[0-9]+ ' <<< "$output2")
if [ -n "$one" ] && [ "$one" = "$two" ] && [ "$(grep -c 'eval run' <<< "$output2")" = 1 ]; then ok "eval at 2 ranks gives the same table"
else bad "eval at 2 ranks gives the same table" "$output"$'\n'"$output2"; fi
expect_error "eval without data.test" "dptrain eval needs test data: set data.test" \
  "$dptrain" eval config.toml --dir store-a "${no_train[@]}" --set data.test=""

# 8. A finished run resumed publishes nothing and says so; a resume at an epoch boundary does not evaluate that
#    epoch again (the version saved at the epoch's last step already holds its evaluation).
epochs=(--set data.train=train.h5 --set checkpoint.dir=store-e --set train.epochs=2 --set checkpoint.every_steps=19)
"$dptrain" train config.toml "${epochs[@]}" > epochs.log 2>&1
metrics=$(ls runs/"$(manifest_field store-e v000001 'm["state"]["run_id"]')"/metrics.jsonl)
output=$(timeout 120 "$dptrain" train config.toml "${epochs[@]}" --resume v1 2>&1)
evals=$($py -c '
import json, sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if "eval/loss" in r]
print(steps)' "$metrics")
if [ $? -eq 0 ] && [ "$evals" = "[19, 38, 38]" ] && grep -q "finished 38 steps" <<< "$output"; then
  ok "an epoch-boundary resume does not evaluate the epoch again (evaluations at steps $evals)"
else bad "an epoch-boundary resume evaluates once (evaluations at steps $evals)" "$output"; fi
# Saved at the end only (after the last evaluation), then resumed: no step, no evaluation, no new version.
finished=(--set data.train=train.h5 --set checkpoint.dir=store-f --set train.epochs=1)
"$dptrain" train config.toml "${finished[@]}" > finished.log 2>&1
metrics=$(ls runs/"$(manifest_field store-f v000001 'm["state"]["run_id"]')"/metrics.jsonl)
lines=$(wc -l < "$metrics")
output=$(timeout 120 "$dptrain" train config.toml "${finished[@]}" --resume latest 2>&1)
if [ $? -eq 0 ] && [ "$(ls store-f/versions)" = v000001 ] && ! grep -q eval/loss <(tail -n +$((lines + 1)) "$metrics") \
   && [ "$(grep -c "nothing to train: the resumed run already reached step 19" <<< "$output")" = 1 ]; then
  ok "resuming a finished run publishes nothing, evaluates nothing and says so"
else bad "resuming a finished run publishes nothing" "$output"$'\n'"$(ls store-f/versions)"; fi

# 9. Every read path checks each file's sha256 and md5: export, eval, --init-from, resume.
cp -r store-a store-md5
model=$(manifest_field store-a v000001 '[f["sha256"] for f in m["files"] if f["name"] == "model.safetensors"][0]')
printf 'garbage' | dd of="store-a/blobs/sha256/$model" bs=1 seek=100 conv=notrunc 2>/dev/null
for what in "ckpt export:$dptrain ckpt export v1 --dir store-a --out exported" \
            "eval:$dptrain eval config.toml --dir store-a --checkpoint v1" \
            "--init-from:$dptrain train config.toml --set checkpoint.dir=store-y --init-from v1 --init-from-dir store-a" \
            "--resume:$dptrain train config.toml --set checkpoint.dir=store-a --resume v1"; do
  # shellcheck disable=SC2086
  expect_error "${what%%:*} checks sha256" "model.safetensors failed its sha256 check" ${what#*:}
done
$py - store-md5/versions/v000001/manifest.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for f in m["files"]:
    if f["name"] == "model.safetensors":
        f["md5"] = "0" * 32
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY
expect_error "ckpt export checks md5" "model.safetensors failed its md5 check" \
  "$dptrain" ckpt export v1 --dir store-md5 --out exported
expect_error "eval checks md5" "model.safetensors failed its md5 check" \
  "$dptrain" eval config.toml --dir store-md5 --checkpoint v1

finish lineage
