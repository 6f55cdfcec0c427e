# Sourced by the training benchmarks: their data and Python, checks of what they run, and the data made.
#   data                             the training split (DATA, default datasets/fashion-mnist/train.h5)
#   python                           Debian's python3 with python3-torch (the python3 on PATH may lack torch)
#   bench_require NAME PROGRAM...    every PROGRAM is an executable, or one line naming the build target and exit
#   bench_training_data NAME DATA    DATA exists (imported from Debian's Fashion-MNIST when missing), or exit
data=${DATA:-datasets/fashion-mnist/train.h5}
python=/usr/bin/python3

bench_require() {
  local name=$1 f
  shift
  for f in "$@"; do
    [ -x "$f" ] || { echo "$name: $f is missing: bash scripts/build.sh $(basename "$f")" >&2; exit 1; }
  done
}

bench_training_data() {
  [ -f "$2" ] && return 0
  [ -d /usr/share/datasets/fashion-mnist ] ||
    { echo "$1: $2 is missing and there is no IDX data to import: set DATA=train.h5" >&2; exit 1; }
  "$dptrain" data import-idx /usr/share/datasets/fashion-mnist --out "$(dirname "$2")" > /dev/null
}
