#!/usr/bin/env bash
# Installs every Debian 12 package that dptrain's build, main job and tests need (idempotent, run as root).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache git pkg-config
  libtorch-dev libopenblas0-openmp libopenblas0-pthread  # the second only for cli_test's check of the warning
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
  podman mmdebstrap
)

# LibTorch's BLAS: OpenBLAS built with OpenMP, so that its GEMMs run on the OpenMP threads LibTorch already has.
# OpenBLAS's pthread build keeps a second pool of threads that spin against LibTorch's on the same cores: on 2 cores
# with 2 threads per rank a GPT decoder trained 2.3x and fashion_cnn 1.8x slower (docs/benchmarks.md).
# Debian chooses a BLAS through alternatives; this selects the OpenMP build for every program on the machine,
# PyTorch included, so comparisons between the two run on the same library.
select_openmp_blas() {
  local dir=/usr/lib/x86_64-linux-gnu/openblas-openmp name
  for name in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    [ "$(readlink -f "/etc/alternatives/$name-x86_64-linux-gnu")" = "$(readlink -f "$dir/$name")" ] && continue
    if [ "$(id -u)" -ne 0 ]; then
      echo "install-deps: warning: $name is not OpenBLAS's OpenMP build (slower with several threads per rank);" \
        "as root run: update-alternatives --set $name-x86_64-linux-gnu $dir/$name" >&2
      continue
    fi
    update-alternatives --quiet --set "$name-x86_64-linux-gnu" "$dir/$name"
  done
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
elif [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root or install them with apt-get" >&2
  exit 1
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
select_openmp_blas
