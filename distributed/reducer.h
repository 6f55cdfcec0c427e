// Reducer: the DDP engine. Gradients live in buckets whose all-reduce (with ZeRO-1: reduce-scatter) starts during
// backward, as soon as a bucket's gradients are all accumulated, in the same bucket order on every rank.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "distributed/backend.h"

namespace dpt::distributed {

enum class Compression { None, BFloat16, Float16 };

// The ddp.compression values: "none", "bf16", "fp16".
std::vector<std::string> compression_names();
// An unknown name is an error with the closest known one.
Compression parse_compression(const std::string& name);

struct ReducerOptions {
  // The first bucket is small so that its all-reduce starts early in backward; later ones trade latency for
  // fewer, larger collectives.
  double first_bucket_mb = 1.0;
  double bucket_cap_mb = 25.0;
  // Parameters that got no gradient in a step contribute zeros instead of raising an error.
  bool find_unused_parameters = false;
  // Gradients travel as 16-bit values (half the bytes); ranks' values are summed in float32 and the result is
  // widened back into the float32 gradients.
  Compression compression = Compression::None;
  // ZeRO-1 (ddp.zero = 1): buckets are reduce-scattered instead of all-reduced, each rank keeping the reduced
  // gradient of its shard (1/N) of every bucket; the parameters live in one flat buffer laid out as the buckets, so
  // that the caller steps this rank's shard (shard_pieces) and gather_parameters all-gathers them in place. The
  // bucket layout is the first one (registration order reversed): the rebuild to the first step's gradient order
  // would move the optimizer state's shards between ranks.
  bool zero = false;

  // From ddp.first_bucket_mb, ddp.bucket_cap_mb, ddp.find_unused_parameters, ddp.compression and ddp.zero.
  static ReducerOptions from_config(const Config& config);
};

// One backward pass, as the trainer announces it before running it.
struct BackwardPass {
  std::int64_t step = 0;    // the optimizer step, named in errors
  double weight = 1.0;      // this rank's share of the step's global batch (local samples / global samples)
  bool communicate = true;  // false: a gradient-accumulation micro-step; gradients only add up locally
  bool has_samples = true;  // false: this rank runs no backward in this pass; it contributes zeros, or what
                            // earlier accumulation passes of the step added up
};

class Reducer {
 public:
  using NamedParameter = std::pair<std::string, at::Tensor>;

  // `parameters`: the trainable tensors in registration order, with names for error messages; all of one
  // dtype (float32) and device. Registers one hook per parameter on its gradient accumulator. Gradient buckets
  // go through `gradients` (on the parameters' device); the bucket order and the no-gradient map, small host
  // tensors, through `control` (see make_backends).
  Reducer(std::vector<NamedParameter> parameters, Backend& gradients, Backend& control, ReducerOptions options = {});
  // One backend in both roles: CPU parameters, where MPI carries both.
  Reducer(std::vector<NamedParameter> parameters, Backend& backend, ReducerOptions options = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Starts an optimizer step: every parameter's .grad becomes undefined, and is its view into bucket memory
  // again once its gradient is ready (or after finish()). Call once per optimizer step, before the first
  // backward. Applies a bucket order rebuilt after the first step.
  void zero_grad();

  // Arms the hooks for the next backward pass. An accumulation pass (communicate = false) needs no finish().
  void prepare_for_backward(const BackwardPass& pass);

  // After a communicating backward: starts the buckets still pending (unused parameters), waits for every bucket and
  // leaves the gradient of the global-batch mean loss in every parameter's .grad, identical on every rank. Throws a
  // dpt::Error naming the parameters when one got no gradient on some rank and find_unused_parameters is off
  // (every rank throws in the same step), or when a collective fails or times out.
  void finish();

  // int32 [1] on the parameters' device: nonzero after a communicating backward where this rank's own gradients of
  // the step (summed over its micro-batches, before any reduction) held a NaN or an infinity. The check rides along
  // the copy into the buckets (no pass of its own, no host synchronisation); it tells which ranks brought the
  // non-finite values a reduced gradient holds.
  const at::Tensor& local_nonfinite() const { return local_nonfinite_; }

  // The bucket layout: parameter indices (registration order) per bucket, in launch order. Identical on every
  // rank.
  std::vector<std::vector<std::size_t>> bucket_parameters() const;

  // Whether `tensor` shares memory with the gradient buckets, their 16-bit copies, the flat parameters (zero) or
  // the buffer a gather_shards in progress gathers into.
  bool holds(const at::Tensor& tensor) const;
  // Whether the optimizer state is sharded (options.zero).
  bool zero() const { return options_.zero; }
  // How gradients travel (options.compression).
  Compression compression() const { return options_.compression; }

  // With options.zero, this rank's shard of the buckets, cut at parameter boundaries.
  struct ShardPiece {
    std::size_t parameter = 0;  // registration order
    std::int64_t offset = 0;    // into the parameter's elements (flattened)
    at::Tensor tensor;          // those elements: a 1-D view of the parameter's storage; its .grad the matching part
                                // of the gradient bucket, which holds the reduced gradient after finish()
  };
  // In bucket order; a rank holds no piece of a bucket whose shard for it is only padding. Fixed for the
  // Reducer's life: an optimizer over the pieces' tensors steps this rank's shard (ZeRO-1).
  const std::vector<ShardPiece>& shard_pieces() const { return pieces_; }
  // With options.zero, after finish(): this rank's shard of every gradient bucket, in bucket order (padding is
  // zeros). Only these hold reduced gradients; the rest of each .grad holds partial sums. What the gradient norm
  // (each rank's sum of squares, summed over the ranks) and clipping go over.
  std::vector<at::Tensor> gradient_shards() const;
  // With options.zero: every bucket's parameters all-gathered in place (each shard from the rank that stepped it),
  // so every rank holds every updated parameter. Collective over the gradient backend; call after the step.
  void gather_parameters();
  // With options.zero: whole per-parameter tensors assembled from every rank's pieces of some per-element quantity
  // (optimizer state): pieces[k] holds shard_pieces()[k]'s elements of it. One tensor per parameter (registration
  // order, shaped like it, on the parameters' device), the same on every rank. Collective over the gradient backend.
  std::vector<at::Tensor> gather_shards(const std::vector<at::Tensor>& pieces);

 private:
  struct Parameter;
  struct Bucket;
  class ReadyHook;

  void layout(const std::vector<std::size_t>& order);
  void bind_gradient_views();
  void adopt_gradient(Parameter& p);
  void on_gradient_ready(std::size_t index);
  void mark_ready(std::size_t index);
  void launch_ready_buckets();
  void launch(Bucket& bucket);
  bool scales_in_pack() const;
  void wait_all();
  void check_all_used(const at::Tensor& unused_count);
  std::vector<std::size_t> layout_order() const;
  std::string describe(const Bucket& bucket) const;
  void lay_out_shards();

  Backend& backend_;   // gradients
  Backend& control_;   // host tensors
  ReducerOptions options_;
  std::vector<Parameter> params_;
  std::vector<Bucket> buckets_;
  at::Tensor flat_;  // every bucket's gradients, buckets back to back in launch order (zero: each padded)
  at::Tensor parameters_flat_;  // zero: every parameter's storage, laid out as flat_
  std::vector<ShardPiece> pieces_;  // zero: this rank's shard of the buckets
  at::Tensor gathering_;  // during gather_shards: the buffer it all-gathers into (not kept after it returns)
  at::Tensor local_nonfinite_;  // see local_nonfinite()

  std::mutex mutex_;  // hooks of CUDA parameters run on autograd device threads
  BackwardPass pass_;
  bool armed_ = false;
  std::size_t next_launch_ = 0;
  std::string hook_error_;
  std::vector<std::size_t> ready_order_;  // of the first communicating step, for the bucket rebuild
  bool order_recorded_ = false;
  std::vector<std::size_t> rebuilt_order_;  // rank 0's ready order, applied at the next zero_grad()
};

// Broadcasts every tensor from rank 0 (initial parameters, buffers such as BatchNorm running statistics) through
// the backend of the tensors' device.
void broadcast_from_root(const std::vector<at::Tensor>& tensors, Backend& backend);

}  // namespace dpt::distributed
