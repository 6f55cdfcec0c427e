#!/usr/bin/env bash
# Installs every Debian 12 package that dptrain's build, main job and tests need (idempotent, run as root).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache git pkg-config
  libtorch-dev libopenblas0-pthread
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libcurl4-openssl-dev libssl-dev zlib1g-dev
  dataset-fashion-mnist
  python3-torch python3-h5py python3-numpy
  python3-matplotlib
  python3-venv prometheus
  slurmctld slurmd slurm-client munge
  openssh-server openssh-client iproute2  # tests/multinode: sshd in each namespace host, ip and tc
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root or install them with apt-get" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
