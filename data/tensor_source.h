// TensorSource: a Source over tensors already in memory (synthetic data, tests, the loader's in-memory cache).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/source.h"

namespace dpt::data {

class TensorSource final : public Source {
 public:
  // inputs [N, ...] of any dtype; targets [N, ...]: class labels of an integer dtype (stored as int64), or
  // regression targets of a floating-point one (stored as float32).
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

// The whole of `source` copied into memory (read in large sorted blocks) when its samples take at most
// `budget_bytes`; otherwise `source` itself. Shuffling is global, so over its epochs a rank is given every sample:
// caching "the rank's shard" means caching all of them, once, and later epochs never touch the files.
std::shared_ptr<Source> cache_in_memory(std::shared_ptr<Source> source, std::int64_t budget_bytes);

// Bytes the inputs and targets of all samples of `source` take in memory (as read_sorted returns them).
std::int64_t source_bytes(Source& source);

}  // namespace dpt::data
