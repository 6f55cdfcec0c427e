// Reducer: gradient buckets filled by autograd, scaled in place, all-reduced (ZeRO-1: reduce-scattered) in bucket
// order while backward goes on.
#include "distributed/reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <numeric>

#include "core/check.h"
#include "core/registry.h"
#include "kernels/bucket_pack.h"
#include "kernels/scale_copy.h"

namespace dpt::distributed {

namespace {

const std::pair<const char*, Compression> kCompressions[] = {
    {"none", Compression::None}, {"bf16", Compression::BFloat16}, {"fp16", Compression::Float16}};

}  // namespace

std::vector<std::string> compression_names() {
  std::vector<std::string> names;
  for (const auto& [name, value] : kCompressions) names.emplace_back(name);
  return names;
}

Compression parse_compression(const std::string& name) {
  for (const auto& [known, value] : kCompressions) {
    if (name == known) return value;
  }
  DPT_THROW("unknown gradient compression '", name, "' (ddp.compression)",
            unknown_name_hint(name, compression_names(), "compression"));
}

ReducerOptions ReducerOptions::from_config(const Config& config) {
  ReducerOptions options;
  options.bucket_cap_mb = config.get_float("ddp.bucket_cap_mb");
  options.first_bucket_mb = config.get_float("ddp.first_bucket_mb");
  options.find_unused_parameters = config.get_bool("ddp.find_unused_parameters");
  options.compression = parse_compression(config.get_string("ddp.compression"));
  options.zero = config.get_int("ddp.zero") == 1;
  return options;
}

struct Reducer::Parameter {
  std::string name;
  at::Tensor tensor;
  // Held so that the accumulator (and the hook on it) outlives each backward: a parameter only keeps it weakly.
  std::shared_ptr<torch::autograd::Node> accumulator;
  std::uintptr_t hook_key = 0;
  std::size_t bucket = 0;
  at::Tensor view;  // this parameter's slice of its bucket, shaped like the parameter
  bool ready = false;
};

struct Reducer::Bucket {
  std::vector<std::size_t> params;  // indices into params_, in layout order
  at::Tensor flat;                  // slice of flat_ (zero: padded to a multiple of the world size)
  std::int64_t shard = 0;           // zero: elements per rank
  at::Tensor parameters;            // zero: the same slice of parameters_flat_
  at::Tensor wire;                  // 16-bit copy that travels when compressing
  std::size_t pending = 0;          // parameters not yet ready in this pass
  std::shared_ptr<Work> work;
};

// Runs after the parameter's AccumulateGrad node has added this backward's gradient into .grad.
class Reducer::ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(Reducer& reducer, std::size_t index) : reducer_(reducer), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    reducer_.on_gradient_ready(index_);
    return outputs;
  }

 private:
  Reducer& reducer_;
  std::size_t index_;
};

Reducer::Reducer(std::vector<NamedParameter> parameters, Backend& backend, ReducerOptions options)
    : Reducer(std::move(parameters), backend, backend, options) {}

Reducer::Reducer(std::vector<NamedParameter> parameters, Backend& gradients, Backend& control, ReducerOptions options)
    : backend_(gradients), control_(control), options_(options), order_recorded_(options.zero) {
  DPT_CHECK(gradients.world_size() == control.world_size() && gradients.rank() == control.rank(),
            "the gradient backend (", gradients.name(), ", rank ", gradients.rank(), " of ", gradients.world_size(),
            ") and the control backend (", control.name(), ", rank ", control.rank(), " of ", control.world_size(),
            ") must span the same ranks");
  DPT_CHECK(!parameters.empty(), "the model has no trainable parameters");
  DPT_CHECK(options_.first_bucket_mb > 0 && options_.bucket_cap_mb > 0, "bucket sizes must be positive (got ",
            options_.first_bucket_mb, " MiB first, ", options_.bucket_cap_mb, " MiB cap)");
  const at::Tensor& first = parameters.front().second;
  for (auto& [name, tensor] : parameters) {
    DPT_CHECK(tensor.requires_grad() && tensor.is_leaf(), "parameter '", name,
              "' is not a trainable leaf tensor: pass only parameters with requires_grad");
    DPT_CHECK(tensor.scalar_type() == first.scalar_type() && tensor.device() == first.device(),
              "all trainable parameters must share one dtype and device; '", name, "' is ", tensor.toString(), ", '",
              parameters.front().first, "' is ", first.toString());
    DPT_CHECK(at::isFloatingType(tensor.scalar_type()), "parameter '", name, "' is ", tensor.toString(),
              ": gradients are reduced for floating-point parameters only");
    Parameter p;
    p.name = name;
    p.tensor = tensor;
    p.accumulator = torch::autograd::impl::grad_accumulator(tensor);
    DPT_CHECK(p.accumulator, "parameter '", name, "' has no gradient accumulator");
    params_.push_back(std::move(p));
  }
  local_nonfinite_ = at::zeros({1}, params_.front().tensor.options().dtype(at::kInt).requires_grad(false));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i].hook_key = params_[i].accumulator->add_post_hook(std::make_unique<ReadyHook>(*this, i));
  }
  // Backward produces gradients roughly in reverse registration order: the last layers' first.
  std::vector<std::size_t> order(params_.size());
  std::iota(order.rbegin(), order.rend(), std::size_t{0});
  layout(order);
}

Reducer::~Reducer() {
  for (auto& p : params_) p.accumulator->del_post_hook(p.hook_key);
}

void Reducer::layout(const std::vector<std::size_t>& order) {
  const double mib = 1024.0 * 1024.0;
  buckets_.clear();
  std::int64_t total = 0;
  std::int64_t bucket_bytes = 0;
  for (std::size_t index : order) {
    const Parameter& p = params_[index];
    const auto bytes = static_cast<std::int64_t>(p.tensor.nbytes());
    const double cap = (buckets_.size() <= 1 ? options_.first_bucket_mb : options_.bucket_cap_mb) * mib;
    // A parameter that would overflow a non-empty bucket starts the next one (a large one gets its own).
    if (buckets_.empty() || (!buckets_.back().params.empty() && static_cast<double>(bucket_bytes + bytes) > cap)) {
      buckets_.emplace_back();
      bucket_bytes = 0;
    }
    buckets_.back().params.push_back(index);
    bucket_bytes += bytes;
  }
  // ZeRO-1 pads each bucket to equal shards; the padding stays zero.
  const std::int64_t world = options_.zero ? backend_.world_size() : 1;
  const auto padded = [&](const Bucket& bucket) {
    std::int64_t numel = 0;
    for (std::size_t index : bucket.params) numel += params_[index].tensor.numel();
    return (numel + world - 1) / world * world;
  };
  for (const Bucket& bucket : buckets_) total += padded(bucket);
  flat_ = at::zeros({total}, params_.front().tensor.options().requires_grad(false));
  const at::ScalarType wire_type = options_.compression == Compression::BFloat16 ? at::kBFloat16 : at::kHalf;
  std::int64_t start = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    std::int64_t offset = start;
    for (std::size_t index : bucket.params) {
      Parameter& p = params_[index];
      p.bucket = b;
      p.view = flat_.narrow(0, offset, p.tensor.numel()).view(p.tensor.sizes());
      offset += p.tensor.numel();
    }
    const std::int64_t numel = padded(bucket);
    bucket.flat = flat_.narrow(0, start, numel);
    bucket.shard = numel / world;
    if (options_.compression != Compression::None)
      bucket.wire = at::empty({numel}, flat_.options().dtype(wire_type));
    start += numel;
  }
  bind_gradient_views();
  if (options_.zero) lay_out_shards();
}

namespace {

// Where a 1-D or reshaped slice of `flat` starts in it, in elements.
std::int64_t offset_in(const at::Tensor& slice, const at::Tensor& flat) {
  return slice.storage_offset() - flat.storage_offset();
}

}  // namespace

// The parameters move into one flat buffer laid out as the gradients: each one's values are copied there and its
// storage swapped by set_data, so the module, the optimizer and autograd keep the same tensors. Then this rank's
// shard of every bucket is cut at the parameters' boundaries.
void Reducer::lay_out_shards() {
  at::NoGradGuard no_grad;
  parameters_flat_ = at::zeros_like(flat_);
  pieces_.clear();
  const std::int64_t rank = backend_.rank();
  for (Bucket& bucket : buckets_) {
    const std::int64_t start = offset_in(bucket.flat, flat_);
    bucket.parameters = parameters_flat_.narrow(0, start, bucket.flat.numel());
    const std::int64_t shard_begin = start + rank * bucket.shard;
    const std::int64_t shard_end = shard_begin + bucket.shard;
    for (std::size_t index : bucket.params) {
      Parameter& p = params_[index];
      const std::int64_t begin = offset_in(p.view, flat_);
      const std::int64_t numel = p.tensor.numel();
      at::Tensor storage = parameters_flat_.narrow(0, begin, numel).view(p.tensor.sizes());
      storage.copy_(p.tensor.detach());
      p.tensor.set_data(storage);
      const std::int64_t first = std::max(shard_begin, begin);
      const std::int64_t last = std::min(shard_end, begin + numel);
      if (first >= last) continue;
      ShardPiece piece{index, first - begin, parameters_flat_.narrow(0, first, last - first)};
      piece.tensor.mutable_grad() = flat_.narrow(0, first, last - first);
      pieces_.push_back(std::move(piece));
    }
  }
}

std::vector<at::Tensor> Reducer::gradient_shards() const {
  DPT_CHECK(options_.zero, "Reducer::gradient_shards() needs ddp.zero = 1");
  std::vector<at::Tensor> shards;
  for (const Bucket& bucket : buckets_) {
    shards.push_back(bucket.flat.narrow(0, backend_.rank() * bucket.shard, bucket.shard));
  }
  return shards;
}

void Reducer::gather_parameters() {
  DPT_CHECK(options_.zero, "Reducer::gather_parameters() needs ddp.zero = 1");
  std::vector<std::shared_ptr<Work>> works;
  for (Bucket& bucket : buckets_) works.push_back(backend_.all_gather(bucket.parameters));
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    try {
      works[b]->wait();
    } catch (const Error& e) {
      DPT_THROW("step ", pass_.step, ": all-gather of the parameters of ", describe(buckets_[b]), " on backend ",
                backend_.name(), " failed: ", e.message());
    }
  }
}

std::vector<at::Tensor> Reducer::gather_shards(const std::vector<at::Tensor>& pieces) {
  DPT_CHECK(options_.zero && pieces.size() == pieces_.size(), "Reducer::gather_shards() needs ddp.zero = 1 and one ",
            "tensor per shard piece (", pieces_.size(), "), got ", pieces.size());
  at::Tensor whole = at::zeros_like(flat_);
  gathering_ = whole;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const at::Tensor& piece = pieces_[k].tensor;
    DPT_CHECK(pieces[k].numel() == piece.numel(), "shard piece ", k, " has ", piece.numel(), " elements, got ",
              pieces[k].numel());
    whole.narrow(0, offset_in(piece, parameters_flat_), piece.numel()).copy_(pieces[k].reshape({-1}));
  }
  std::vector<at::Tensor> slices;
  std::vector<std::shared_ptr<Work>> works;
  for (const Bucket& bucket : buckets_) {
    slices.push_back(whole.narrow(0, offset_in(bucket.flat, flat_), bucket.flat.numel()));
    works.push_back(backend_.all_gather(slices.back()));
  }
  gathering_.reset();
  for (auto& work : works) work->wait();
  std::vector<at::Tensor> out;
  for (const Parameter& p : params_) {
    out.push_back(whole.narrow(0, offset_in(p.view, flat_), p.tensor.numel()).view(p.tensor.sizes()));
  }
  return out;
}

void Reducer::bind_gradient_views() {
  for (auto& p : params_) {
    if (!p.tensor.grad().defined() || !p.tensor.grad().is_same(p.view)) p.tensor.mutable_grad() = p.view;
  }
}

std::vector<std::size_t> Reducer::layout_order() const {
  std::vector<std::size_t> order;
  for (const auto& b : buckets_) order.insert(order.end(), b.params.begin(), b.params.end());
  return order;
}

std::vector<std::vector<std::size_t>> Reducer::bucket_parameters() const {
  std::vector<std::vector<std::size_t>> out;
  for (const auto& b : buckets_) out.push_back(b.params);
  return out;
}

bool Reducer::holds(const at::Tensor& tensor) const {
  if (tensor.is_alias_of(flat_)) return true;
  if (parameters_flat_.defined() && tensor.is_alias_of(parameters_flat_)) return true;
  if (gathering_.defined() && tensor.is_alias_of(gathering_)) return true;
  return std::any_of(buckets_.begin(), buckets_.end(),
                     [&](const Bucket& b) { return b.wire.defined() && tensor.is_alias_of(b.wire); });
}

void Reducer::zero_grad() {
  std::lock_guard<std::mutex> lock(mutex_);
  DPT_CHECK(!armed_, "Reducer::zero_grad() during a backward pass: call finish() first");
  if (!rebuilt_order_.empty()) {
    // Rank 0's order of the first step: buckets now fill in the order backward really produces gradients.
    layout(rebuilt_order_);
    rebuilt_order_.clear();
  }
  // Gradients start undefined rather than as zeroed views: backward's AccumulateGrad then hands each gradient
  // over instead of adding it to zeros, and the ready hook copies it into its view (no pass zeroing the buckets).
  for (auto& p : params_) p.tensor.mutable_grad().reset();
}

void Reducer::prepare_for_backward(const BackwardPass& pass) {
  std::lock_guard<std::mutex> lock(mutex_);
  DPT_CHECK(!armed_, "Reducer::prepare_for_backward() twice without finish() in between (step ", pass.step, ")");
  pass_ = pass;
  if (!pass.communicate) return;  // hooks stay idle: gradients only add up in the buckets
  armed_ = true;
  local_nonfinite_.zero_();
  for (auto& p : params_) p.ready = false;
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
  next_launch_ = 0;
  hook_error_.clear();
}

void Reducer::on_gradient_ready(std::size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // not our backward, or an accumulation micro-step
  Parameter& p = params_[index];
  if (p.ready) {
    hook_error_ = "parameter '" + p.name +
                  "' received a gradient twice in one step: run one backward per "
                  "prepare_for_backward() and finish()";
    return;
  }
  adopt_gradient(p);
  if (!order_recorded_) ready_order_.push_back(index);
  mark_ready(index);
}

// Moves the parameter's gradient, scaled by this rank's share of the global batch, into its view (none yet:
// zeros) and makes the view its .grad: the scaling and the non-finite check cost no pass of their own (with
// compression the pack into the 16-bit copy applies the scale). The gradient is elsewhere after zero_grad(), after
// accumulation micro-steps, and under create_graph (autograd then replaces .grad instead of adding in place).
void Reducer::adopt_gradient(Parameter& p) {
  const at::Tensor& grad = p.tensor.grad();
  if (grad.defined()) {
    kernels::scale_copy(p.view, grad, scales_in_pack() ? 1.0 : pass_.weight, local_nonfinite_);
  } else {
    p.view.zero_();
  }
  p.tensor.mutable_grad() = p.view;
}

void Reducer::mark_ready(std::size_t index) {
  params_[index].ready = true;
  if (--buckets_[params_[index].bucket].pending == 0) launch_ready_buckets();
}

void Reducer::launch_ready_buckets() {
  // Strictly in bucket order, so every rank issues the same collectives in the same order.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(buckets_[next_launch_++]);
}

bool Reducer::scales_in_pack() const {
  return options_.compression != Compression::None && backend_.world_size() > 1;
}

// Every gradient in the bucket is scaled by this rank's share of the global batch (in adopt_gradient, or here in
// the pack to 16 bits, so that the rounding comes after the scaling): the sum over ranks is the gradient of the
// global-batch mean loss, also when ranks hold unequal sample counts.
void Reducer::launch(Bucket& bucket) {
  if (backend_.world_size() == 1) return;
  if (options_.compression != Compression::None) kernels::pack_bucket(bucket.wire, bucket.flat, pass_.weight);
  at::Tensor& travels = options_.compression == Compression::None ? bucket.flat : bucket.wire;
  bucket.work = options_.zero ? backend_.reduce_scatter_overlapped(travels, ReduceOp::Sum)
                              : backend_.allreduce_overlapped(travels, ReduceOp::Sum);
}

std::string Reducer::describe(const Bucket& bucket) const {
  const std::size_t b = params_[bucket.params.front()].bucket;
  return "gradient bucket " + std::to_string(b + 1) + " of " + std::to_string(buckets_.size()) + " (" +
         std::to_string(bucket.flat.nbytes()) + " bytes, parameters '" + params_[bucket.params.front()].name +
         "' .. '" + params_[bucket.params.back()].name + "')";
}

void Reducer::finish() {
  std::vector<std::size_t> unused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pass_.communicate) return;
    DPT_CHECK(armed_, "Reducer::finish() without prepare_for_backward()");
    armed_ = false;
    DPT_CHECK(hook_error_.empty(), "step ", pass_.step, ": ", hook_error_);
    // Parameters without a gradient in this pass are ready with zeros, or with earlier micro-steps' sums, so
    // every rank launches every bucket and no rank waits for a collective another rank never starts.
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (params_[i].ready) continue;
      adopt_gradient(params_[i]);
      if (pass_.has_samples) unused.push_back(i);
      if (!order_recorded_) ready_order_.push_back(i);
      mark_ready(i);
    }
  }
  std::shared_ptr<Work> order_work;
  at::Tensor order;
  if (!order_recorded_) {
    order = at::tensor(std::vector<std::int64_t>(ready_order_.begin(), ready_order_.end()), at::kLong);
    if (control_.world_size() > 1) order_work = control_.broadcast(order, 0);
  }
  // Every rank learns which parameters lacked a gradient anywhere, so all ranks take the same decision.
  std::shared_ptr<Work> unused_work;
  at::Tensor unused_count;
  if (!options_.find_unused_parameters) {
    unused_count = at::zeros({static_cast<std::int64_t>(params_.size())}, at::kInt);
    for (std::size_t i : unused) unused_count[static_cast<std::int64_t>(i)] = 1;
    if (control_.world_size() > 1) unused_work = control_.allreduce(unused_count, ReduceOp::Sum);
  }
  wait_all();
  if (!order_recorded_) {
    if (order_work) order_work->wait();
    rebuilt_order_.assign(order.data_ptr<std::int64_t>(), order.data_ptr<std::int64_t>() + order.numel());
    order_recorded_ = true;
    ready_order_.clear();
    if (rebuilt_order_ == layout_order()) rebuilt_order_.clear();  // already in that order: nothing to rebuild
  }
  if (unused_work) unused_work->wait();
  if (unused_count.defined()) check_all_used(unused_count);
}

void Reducer::wait_all() {
  for (auto& bucket : buckets_) {
    if (!bucket.work) continue;
    try {
      bucket.work->wait();
    } catch (const Error& e) {
      DPT_THROW("step ", pass_.step, ": ", options_.zero ? "reduce-scatter" : "all-reduce", " of ", describe(bucket),
                " on backend ", backend_.name(), " failed: ", e.message());
    }
    if (options_.compression == Compression::None) continue;
    if (options_.zero) {
      const std::int64_t first = backend_.rank() * bucket.shard;
      at::Tensor shard = bucket.flat.narrow(0, first, bucket.shard);
      kernels::unpack_bucket(shard, bucket.wire.narrow(0, first, bucket.shard), 1.0);
    } else {
      kernels::unpack_bucket(bucket.flat, bucket.wire, 1.0);
    }
  }
}

void Reducer::check_all_used(const at::Tensor& unused_count) {
  std::string names;
  const auto* count = unused_count.data_ptr<std::int32_t>();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (count[i] == 0) continue;
    names += (names.empty() ? "'" : ", '") + params_[i].name + "' (on " + std::to_string(count[i]) + " of " +
             std::to_string(backend_.world_size()) + " ranks)";
  }
  DPT_CHECK(names.empty(), "step ", pass_.step, ": parameter(s) ", names,
            " received no gradient: they took no part in the loss. Set ddp.find_unused_parameters = true if the ",
            "model skips parts of itself on some steps (they then count as zero gradients), or remove them");
}

void broadcast_from_root(const std::vector<at::Tensor>& tensors, Backend& backend) {
  if (backend.world_size() == 1) return;
  std::vector<std::shared_ptr<Work>> pending;
  pending.reserve(tensors.size());
  for (const auto& t : tensors) {
    DPT_CHECK(t.is_contiguous(), "broadcast of model state needs contiguous tensors");
    at::Tensor data = t.detach();
    pending.push_back(backend.broadcast(data, 0));
  }
  for (auto& w : pending) w->wait();
}

}  // namespace dpt::distributed
