#!/usr/bin/env bash
# Runs validate_manifests.py (k8s/ against the Kubernetes, MPI Operator and Kubeflow Trainer schemas) with the
# pinned PyPI packages of scripts/venv-requirements.txt, which setup-venv.sh installs into .venv.
#   manifests_test.sh DPTRAIN [--broken]
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bash "$root/scripts/setup-venv.sh" || { echo "FAILED: scripts/setup-venv.sh"; exit 1; }
exec "$root/.venv/bin/python" "$root/tests/k8s/validate_manifests.py" "$@"
