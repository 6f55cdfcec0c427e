// Source: the interface the loader reads samples through; HDF5 files and in-memory tensors implement it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace dpt::data {

struct SampleBatch {
  at::Tensor inputs;   // [n, ...sample_shape] in the stored dtype (float16 is widened to float32)
  at::Tensor targets;  // [n, ...]: int64 class labels (HDF5 files hold [n]), or what a Source of its own gives
};

class Source {
 public:
  virtual ~Source() = default;
  virtual std::int64_t size() const = 0;
  virtual std::vector<std::int64_t> sample_shape() const = 0;
  // Reads samples at strictly increasing indices with as few reads as possible (contiguous runs).
  virtual SampleBatch read_sorted(const std::vector<std::int64_t>& sorted_indices) = 0;
  // Says these samples (strictly increasing) will be read soon, so a file-backed source can ask the OS to start
  // reading them in the background. Only a hint: nothing observable changes, and sources in memory ignore it.
  // The loader calls it from a thread of its own, concurrently with read_sorted.
  virtual void will_need(const std::vector<std::int64_t>& sorted_indices) { (void)sorted_indices; }
  // One line for logs, e.g. "train.h5 (images uint8 [60000,28,28], labels uint8 [60000])".
  virtual std::string describe() const = 0;
  // Where sample `index` comes from, for an error about that sample: "sample 12 of train.h5". A source over
  // several files names the file and the index inside it.
  virtual std::string locate(std::int64_t index) const;
};

// Throws a dpt::Error naming `source` unless `sorted_indices` is strictly increasing and inside [0, size).
void check_sorted_indices(const std::vector<std::int64_t>& sorted_indices, std::int64_t size,
                          const std::string& source);

// Maximal runs of consecutive indices in a strictly increasing list: {first index, length} each.
struct IndexRun {
  std::int64_t first;
  std::int64_t length;
};
std::vector<IndexRun> contiguous_runs(const std::vector<std::int64_t>& sorted_indices);

}  // namespace dpt::data
