// Hdf5Source: samples from two datasets of one HDF5 file (inputs [N, ...] and integer targets [N]).
#pragma once

#include <memory>
#include <string>

#include "data/source.h"

namespace dpt::data {

// Validates the file and both datasets at construction, so a bad path or layout fails before training starts.
// Open it in each process after MPI starts (HDF5 handles must not cross fork). Not thread-safe: one reader at a time.
class Hdf5Source final : public Source {
 public:
  Hdf5Source(const std::string& path, const std::string& inputs_dataset, const std::string& targets_dataset);
  ~Hdf5Source() override;
  Hdf5Source(const Hdf5Source&) = delete;
  Hdf5Source& operator=(const Hdf5Source&) = delete;

  std::int64_t size() const override;
  std::vector<std::int64_t> sample_shape() const override;
  // One hyperslab read per contiguous run of indices and dataset.
  SampleBatch read_sorted(const std::vector<std::int64_t>& sorted_indices) override;
  std::string describe() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::data
