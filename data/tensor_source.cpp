// TensorSource: in-memory samples behind the Source interface, with the same index checks as file sources.
#include "data/tensor_source.h"

#include <sstream>
#include <utility>

#include "core/check.h"

namespace dpt::data {

TensorSource::TensorSource(at::Tensor inputs, at::Tensor targets, std::string name)
    : inputs_(std::move(inputs)), targets_(std::move(targets)), name_(std::move(name)) {
  DPT_CHECK(inputs_.defined() && inputs_.dim() >= 1 && inputs_.size(0) > 0, name_,
            ": inputs must be a non-empty tensor [N, ...]");
  DPT_CHECK(targets_.defined() && targets_.dim() == 1, name_, ": targets must be a 1-D tensor [N]");
  DPT_CHECK(!at::isFloatingType(targets_.scalar_type()) && !at::isComplexType(targets_.scalar_type()), name_,
            ": targets must be integers (class labels), got ", targets_.scalar_type());
  DPT_CHECK(inputs_.size(0) == targets_.size(0), name_, ": ", inputs_.size(0), " inputs but ", targets_.size(0),
            " targets; both must hold one entry per sample");
  inputs_ = inputs_.contiguous();
  targets_ = targets_.to(at::kLong).contiguous();
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

}  // namespace dpt::data
