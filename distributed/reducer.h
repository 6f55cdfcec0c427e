// Reducer: the DDP engine. Gradients live in buckets whose all-reduce starts during backward, as soon as a
// bucket's gradients are all accumulated, in the same bucket order on every rank.
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

  // From ddp.first_bucket_mb, ddp.bucket_cap_mb, ddp.find_unused_parameters and ddp.compression.
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

  // The bucket layout: parameter indices (registration order) per bucket, in launch order. Identical on every
  // rank.
  std::vector<std::vector<std::size_t>> bucket_parameters() const;

  // Whether `tensor` shares memory with the gradient buckets or their 16-bit copies.
  bool holds(const at::Tensor& tensor) const;

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

  Backend& backend_;   // gradients
  Backend& control_;   // host tensors
  ReducerOptions options_;
  std::vector<Parameter> params_;
  std::vector<Bucket> buckets_;
  at::Tensor flat_;  // every bucket's gradients, buckets back to back in launch order

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
