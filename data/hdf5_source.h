// Hdf5Source: samples from two datasets (inputs [N, ...] and integer targets [N] or [N, ...]) of one or many HDF5
// files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/source.h"

namespace dpt::data {

// Validates every file and both datasets at construction, so a bad path or layout fails before training starts.
// Several files are concatenated in the order given: sample i of file k is global sample offset(k) + i. They must
// agree on the inputs' sample shape and dtype. Open it in each process after MPI starts (HDF5 handles must not
// cross fork). Not thread-safe: one reader at a time.
class Hdf5Source final : public Source {
 public:
  Hdf5Source(const std::vector<std::string>& paths, const std::string& inputs_dataset,
             const std::string& targets_dataset);
  Hdf5Source(const std::string& path, const std::string& inputs_dataset, const std::string& targets_dataset);
  ~Hdf5Source() override;
  Hdf5Source(const Hdf5Source&) = delete;
  Hdf5Source& operator=(const Hdf5Source&) = delete;

  std::int64_t size() const override;
  std::vector<std::int64_t> sample_shape() const override;
  // One hyperslab read per contiguous run of indices and dataset.
  SampleBatch read_sorted(const std::vector<std::int64_t>& sorted_indices) override;
  // posix_fadvise(WILLNEED) of the samples' bytes where the layout tells where they are: contiguous datasets and
  // uncompressed chunks that hold whole samples (what `dptrain data import-*` writes); others are left alone, and
  // so are sources whose inputs fit in 64 MiB (they stay in the page cache).
  void will_need(const std::vector<std::int64_t>& sorted_indices) override;
  std::string describe() const override;
  std::string locate(std::int64_t index) const override;
  const std::vector<std::string>& files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::data
