// TensorSource: a Source over tensors already in memory, for synthetic data and tests.
#pragma once

#include <string>

#include "data/source.h"

namespace dpt::data {

class TensorSource final : public Source {
 public:
  // inputs [N, ...] of any dtype; targets [N] of an integer dtype (stored as int64).
  TensorSource(at::Tensor inputs, at::Tensor targets, std::string name = "tensors");

  std::int64_t size() const override;
  std::vector<std::int64_t> sample_shape() const override;
  SampleBatch read_sorted(const std::vector<std::int64_t>& sorted_indices) override;
  std::string describe() const override;

 private:
  at::Tensor inputs_;
  at::Tensor targets_;
  std::string name_;
};

}  // namespace dpt::data
