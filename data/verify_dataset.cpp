// verify_dataset: per-file end-to-end reads with value checks, then the cross-file checks of a multi-file source.
#include "data/verify_dataset.h"

#include <numeric>
#include <sstream>

#include "core/check.h"
#include "data/hdf5_source.h"

namespace dpt::data {
namespace {

constexpr std::int64_t kBlockBytes = 32LL << 20;

struct FileSummary {
  std::int64_t samples = 0;
  std::int64_t min_label = 0;
  std::int64_t max_label = 0;
};

FileSummary verify_file(const std::string& path, const std::string& inputs, const std::string& targets) {
  Hdf5Source source(path, inputs, targets);
  const std::int64_t n = source.size();
  std::int64_t sample_elements = 1;
  for (const auto d : source.sample_shape()) sample_elements *= d;
  const std::int64_t block = std::max<std::int64_t>(1, kBlockBytes / std::max<std::int64_t>(1, sample_elements * 8));
  FileSummary summary{n, INT64_MAX, INT64_MIN};
  for (std::int64_t first = 0; first < n; first += block) {
    std::vector<std::int64_t> indices(static_cast<std::size_t>(std::min(block, n - first)));
    std::iota(indices.begin(), indices.end(), first);
    const SampleBatch batch = source.read_sorted(indices);
    if (at::isFloatingType(batch.inputs.scalar_type())) {
      const at::Tensor bad = at::isfinite(batch.inputs).logical_not().reshape({batch.inputs.size(0), -1}).any(1);
      if (bad.any().item<bool>()) {
        const auto sample = first + bad.nonzero()[0][0].item<std::int64_t>();
        DPT_THROW("dataset '", inputs, "' in HDF5 file ", path, " has a NaN or infinite value in sample ", sample,
                  ": clean the data before training");
      }
    }
    summary.min_label = std::min(summary.min_label, batch.targets.min().item<std::int64_t>());
    summary.max_label = std::max(summary.max_label, batch.targets.max().item<std::int64_t>());
  }
  DPT_CHECK(summary.min_label >= 0, "dataset '", targets, "' in HDF5 file ", path, " holds the negative label ",
            summary.min_label, ": class labels must be 0, 1, 2, ...");
  return summary;
}

}  // namespace

std::string verify_dataset(const std::vector<std::string>& files, const std::string& inputs,
                           const std::string& targets) {
  std::ostringstream out;
  std::int64_t total = 0;
  for (const auto& path : files) {
    const FileSummary summary = verify_file(path, inputs, targets);
    out << "ok  " << path << "  " << summary.samples << " samples, labels " << summary.min_label << ".."
        << summary.max_label << "\n";
    total += summary.samples;
  }
  const Hdf5Source all(files, inputs, targets);
  out << "ok  " << files.size() << " file(s), " << total << " samples: " << all.describe() << "\n";
  return out.str();
}

}  // namespace dpt::data
