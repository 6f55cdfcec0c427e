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

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
[ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
echo "setup-venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary -r "$requirements"
cp "$requirements" "$stamp"
