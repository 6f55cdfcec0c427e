#!/usr/bin/env bash
# install_test.sh CMAKE BUILD_DIR WORK_DIR [CMAKE_ARGS...]: installs the built dptrain into WORK_DIR/prefix, builds
# examples/custom_model and examples/reducer_loop against that install alone, runs one and trains the other at np=2.
source "$(dirname "$0")/../cli/harness.sh"
cmake=$1 build_dir=$2 work=$3
cmake_args=("${@:4}")
source_dir=$(cd "$harness_dir/../.." && pwd)
prefix=$work/prefix

# step NAME COMMAND...: runs COMMAND; on failure reports its output and ends the test, as later steps need it.
step() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then ok "$name"; else bad "$name" "$output"; finish install_test; exit 1; fi
}

# A fixed directory inside the build tree rather than mktemp's: the same paths every run let ccache serve the
# example's compile.
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
step "cmake --install into a fresh prefix" "$cmake" --install "$build_dir" --prefix "$prefix"
step "the installed dptrain executable runs" "$prefix/bin/dptrain" --version
# build_example NAME: configures and builds examples/NAME in ./NAME against the installed package alone, which it
# must find, and whose installed headers, not the source tree nor any private definition of dptrain, it must see.
build_example() {
  step "$1 configures against the installed package" "$cmake" -S "$source_dir/examples/$1" -B "$1" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${cmake_args[@]}"
  local found compile
  found=$(sed -n 's/^dptrain_DIR:PATH=//p' "$1/CMakeCache.txt")
  if [ "$found" = "$prefix/lib/cmake/dptrain" ]; then ok "$1: find_package found the fresh install"
  else bad "$1: find_package found the fresh install" "dptrain_DIR is '$found', want $prefix/lib/cmake/dptrain"; fi
  compile=$(grep -o '"command": "[^"]*main.cpp[^"]*"' "$1/compile_commands.json")
  if [[ "$compile" != *"-I$prefix/include/dptrain "* && "$compile" != *"-isystem $prefix/include/dptrain "* ]]; then
    bad "$1 includes the installed headers" "$compile"
  elif grep -qE -- "-(I|isystem ?)$source_dir( |/[a-z]+ )" <<< "$compile"; then
    bad "$1 does not include dptrain's source tree" "$compile"
  elif grep -qE 'DPTRAIN_HAS_|DPTRAIN_GIT_COMMIT|toml|hdf5' <<< "$compile"; then
    bad "no private definition or include path of dptrain reaches $1" "$compile"
  else ok "$1 compiles against the installed headers only"; fi
  step "$1 builds" "$cmake" --build "$1"
}

build_example custom_model
build_example reducer_loop
step "reducer_loop runs" reducer_loop/dptrain_reducer_loop 5
step "import-idx by the example's own dptrain commands" tiny_data custom_model/dptrain_custom
cat >> config.toml <<'TOML'
[model]
name = "tiny_cnn"
[tracking]
sinks = ["jsonl"]
log_every = 1
TOML
output=$(timeout 300 "${mpirun[@]}" -np 2 custom_model/dptrain_custom train config.toml --set train.max_steps=6 2>&1)
rc=$?
metrics=(runs/*/metrics.jsonl)
if [ "$rc" -ne 0 ]; then bad "tiny_cnn trains at np=2 (exit $rc)" "$output"
elif ! grep -q "finished 6 steps" <<< "$output"; then bad "tiny_cnn trains at np=2 (no 'finished 6 steps')" "$output"
elif [ ! -f "${metrics[0]}" ] || [ "$(grep -c '"train/loss"' "${metrics[0]}")" -ne 6 ]; then
  bad "tiny_cnn trains at np=2 (want 6 train/loss records in runs/*/metrics.jsonl)" "$output"
else ok "tiny_cnn trains at np=2: 6 steps, 6 train/loss records"; fi
finish install_test
