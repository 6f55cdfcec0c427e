// TensorSource: in-memory samples behind the Source interface, with the same index checks as file sources.
#include "data/tensor_source.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <utility>

#include "core/check.h"

namespace dpt::data {

TensorSource::TensorSource(at::Tensor inputs, at::Tensor targets, std::string name)
    : inputs_(std::move(inputs)), targets_(std::move(targets)), name_(std::move(name)) {
  DPT_CHECK(inputs_.defined() && inputs_.dim() >= 1 && inputs_.size(0) > 0, name_,
            ": inputs must be a non-empty tensor [N, ...]");
  DPT_CHECK(targets_.defined() && targets_.dim() >= 1, name_, ": targets must be a tensor [N, ...]");
  DPT_CHECK(!at::isComplexType(targets_.scalar_type()) && targets_.scalar_type() != at::kBool, name_,
            ": targets must be integers (class labels) or floating point (regression), got ",
            targets_.scalar_type());
  DPT_CHECK(inputs_.size(0) == targets_.size(0), name_, ": ", inputs_.size(0), " inputs but ", targets_.size(0),
            " targets; both must hold one entry per sample");
  inputs_ = inputs_.contiguous();
  targets_ = targets_.to(at::isFloatingType(targets_.scalar_type()) ? at::kFloat : at::kLong).contiguous();
}

std::int64_t TensorSource::size() const { return inputs_.size(0); }

std::vector<std::int64_t> TensorSource::sample_shape() const {
  const auto sizes = inputs_.sizes();
  return {sizes.begin() + 1, sizes.end()};
}

SampleBatch TensorSource::read_sorted(const std::vector<std::int64_t>& sorted_indices) {
  check_sorted_indices(sorted_indices, size(), name_);
  const auto index = at::tensor(sorted_indices, at::kLong);
  return {inputs_.index_select(0, index), targets_.index_select(0, index)};
}

std::string TensorSource::describe() const {
  std::ostringstream out;
  out << name_ << " (inputs " << inputs_.scalar_type() << " " << inputs_.sizes() << ", targets " << targets_.size(0)
      << ")";
  return out.str();
}

std::int64_t source_bytes(Source& source) {
  const SampleBatch one = source.read_sorted({0});
  const std::int64_t per_sample = one.inputs.numel() * static_cast<std::int64_t>(one.inputs.element_size()) +
                                  static_cast<std::int64_t>(one.targets.element_size());
  return per_sample * source.size();
}

std::shared_ptr<Source> cache_in_memory(std::shared_ptr<Source> source, std::int64_t budget_bytes) {
  if (budget_bytes <= 0) return source;
  const std::int64_t bytes = source_bytes(*source);
  if (bytes > budget_bytes) return source;
  // Blocks of about 64 MiB: few large sequential reads, without doubling the peak memory in one giant read.
  const std::int64_t n = source->size();
  const std::int64_t block = std::max<std::int64_t>(1, n * (64LL << 20) / bytes);
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> targets;
  for (std::int64_t first = 0; first < n; first += block) {
    std::vector<std::int64_t> indices(static_cast<std::size_t>(std::min(block, n - first)));
    std::iota(indices.begin(), indices.end(), first);
    SampleBatch part = source->read_sorted(indices);
    inputs.push_back(std::move(part.inputs));
    targets.push_back(std::move(part.targets));
  }
  return std::make_shared<TensorSource>(at::cat(inputs), at::cat(targets), source->describe() + " in memory");
}

}  // namespace dpt::data
