#!/usr/bin/env bash
# The same training on 2 hosts x 2 ranks, on 1 host x 4 ranks and on 1 rank with the 4x batch ends with the same
# parameters (relative difference < 1e-5): with the default all-reduce, and with each ddp.allreduce path (mpi and
# hierarchical across the hosts, shm and mpi on one host).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh" "$1" 2

# train STORE LAUNCHER... -- ARGS...: 6 steps under LAUNCHER (none: one process), saved in the store STORE. SGD:
# Adam divides by the root of each gradient's running square, which turns sums in another order (1e-7 apart) into
# parameters 1e-4 apart wherever a gradient is near zero; SGD keeps them 1e-7 apart.
train() {
  local store=$1 launch=() output
  shift
  while [ "$1" != "--" ]; do launch+=("$1"); shift; done
  shift
  output=$("${launch[@]}" "$dptrain" train config.toml "${small[@]}" --set train.max_steps=6 \
    --set train.optimizer=sgd --set train.lr=0.05 --set checkpoint.every_steps=6 --set checkpoint.dir="$store" "$@" 2>&1) || { bad "train $store" "$output"; return 1; }
}
one_host=(host_run 0 "${mpirun[@]}" -np 4)

train one-rank -- --set train.batch_size=64
train hosts-2x2 host_mpirun -np 4 -- && same_parameters "2 hosts x 2 ranks = 1 rank, 4x batch" hosts-2x2 one-rank 1e-5
train host-1x4 "${one_host[@]}" -- && same_parameters "1 host x 4 ranks = 1 rank, 4x batch" host-1x4 one-rank 1e-5
for path in mpi hierarchical; do
  train "hosts-2x2-$path" host_mpirun -np 4 -- --set ddp.allreduce=$path &&
    same_parameters "2 hosts x 2 ranks, ddp.allreduce = $path = 1 rank, 4x batch" "hosts-2x2-$path" one-rank 1e-5
done
for path in shm mpi; do
  train "host-1x4-$path" "${one_host[@]}" -- --set ddp.allreduce=$path &&
    same_parameters "1 host x 4 ranks, ddp.allreduce = $path = 1 rank, 4x batch" "host-1x4-$path" one-rank 1e-5
done

finish multinode_equality
