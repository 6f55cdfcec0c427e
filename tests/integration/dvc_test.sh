#!/usr/bin/env bash
# examples/fashion_mnist/dvc.yaml under the real DVC (pinned in scripts/venv-requirements.txt) in a git repository of
# the test's own: `dvc repro` imports, trains (20 steps), evaluates and exports; dvc.lock's md5 of the training
# file is the md5 the checkpoint manifest records for it; a second `dvc repro` runs nothing; a changed training
# parameter reruns train, eval and export but not the import.
# Usage: dvc_test.sh DPTRAIN
set -u
dptrain=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bash "$root/scripts/setup-venv.sh" || { echo "FAILED: scripts/setup-venv.sh"; exit 1; }
dvc="$root/.venv/bin/dvc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$root/tests/cli/harness.sh"
[ -d /usr/share/datasets/fashion-mnist ] || { echo "FAILED: /usr/share/datasets/fashion-mnist is missing: bash scripts/install-deps.sh"; exit 1; }

repo="$work/repo"
mkdir -p "$repo/examples/fashion_mnist"
cp "$root/examples/fashion_mnist/dvc.yaml" "$root/examples/fashion_mnist/config.toml" "$repo/examples/fashion_mnist/"
cd "$repo"
sed -i 's/^epochs = 3$/epochs = 1\nmax_steps = 20/' examples/fashion_mnist/config.toml
git init -q && git config user.email test@dptrain && git config user.name test
"$dvc" init -q && "$dvc" config core.analytics false && git add -A && git commit -qm pipeline
mkdir -p bin && ln -s "$dptrain" bin/dptrain
export PATH="$repo/bin:$PATH" OMP_NUM_THREADS=1

output=$("$dvc" repro examples/fashion_mnist/dvc.yaml 2>&1)
if [ $? -eq 0 ] && [ -f model/model.safetensors ] && grep -q "accuracy" eval.txt; then ok "dvc repro runs the four stages"
else bad "dvc repro runs the four stages" "$output"; fi

lock_md5=$("$root/.venv/bin/python" -c "
import sys, yaml
lock = yaml.safe_load(open('examples/fashion_mnist/dvc.lock'))
print(next(d['md5'] for d in lock['stages']['train']['deps'] if d['path'].endswith('train.h5')))" 2>&1)
manifest_md5=$(/usr/bin/python3 -c "
import json
m = json.load(open('checkpoints/versions/v000001/manifest.json'))
print(next(f['md5'] for f in m['state']['dataset_digest']['files'] if f['path'].endswith('train.h5')))" 2>&1)
if [ -n "$lock_md5" ] && [ "$lock_md5" = "$manifest_md5" ] && [ "$lock_md5" = "$(md5sum datasets/fashion-mnist/train.h5 | cut -d' ' -f1)" ]
then ok "dvc.lock and the manifest record the same md5 of train.h5"
else bad "dvc.lock and the manifest record the same md5 of train.h5" "lock $lock_md5, manifest $manifest_md5"; fi

output=$("$dvc" repro examples/fashion_mnist/dvc.yaml 2>&1)
if grep -q "Data and pipelines are up to date" <<< "$output" && ! grep -q "Running stage" <<< "$output"
then ok "a second dvc repro runs nothing"; else bad "a second dvc repro runs nothing" "$output"; fi

sed -i 's/^lr = 1e-3$/lr = 5e-4/' examples/fashion_mnist/config.toml
output=$("$dvc" repro examples/fashion_mnist/dvc.yaml 2>&1)
if grep -q "Running stage 'examples/fashion_mnist/dvc.yaml:train'" <<< "$output" \
   && grep -q "Running stage 'examples/fashion_mnist/dvc.yaml:export'" <<< "$output" \
   && ! grep -q "Running stage 'examples/fashion_mnist/dvc.yaml:import'" <<< "$output"
then ok "a changed train.lr reruns train onwards, not the import"; else bad "a changed train.lr reruns train onwards" "$output"; fi
finish dvc
