# Sourced by test scripts. tiny_data DPTRAIN: makes train.h5 (300 random 28x28 samples, 10 classes) in the
# current directory and starts config.toml with [data] and [train] (2 epochs, batch 16); append more tables.
tiny_data() {
  /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/make_idx.py" images.gz labels.gz 300 || return 1
  "$1" data import-idx images.gz labels.gz --out train.h5 > /dev/null || return 1
  cat > config.toml <<'TOML'
[data]
train = "train.h5"
test = "train.h5"
[train]
epochs = 2
batch_size = 16
TOML
}
