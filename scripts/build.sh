#!/usr/bin/env bash
# Configures and builds dptrain (Release, Ninja, ccache) into ./build. Arguments name the targets to build
# (default: all). CMake options can be passed through DPTRAIN_CMAKE_ARGS, e.g. "-DDPTRAIN_WITH_CUDA=OFF".
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keys on paths relative to the checkout, so a fresh clone in another folder (CI) reuses earlier builds.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
read -r -a cmake_args <<< "${DPTRAIN_CMAKE_ARGS:-}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j "$(nproc)" "${targets[@]}"
