// Source helpers shared by every implementation: index validation and contiguous-run splitting.
#include "data/source.h"

#include "core/check.h"

namespace dpt::data {

void check_sorted_indices(const std::vector<std::int64_t>& sorted_indices, std::int64_t size,
                          const std::string& source) {
  std::int64_t previous = -1;
  for (const std::int64_t index : sorted_indices) {
    DPT_CHECK(index > previous && index < size, "read_sorted on ", source, ": index ", index,
              " is out of range [0, ", size, ") or not strictly increasing after ", previous);
    previous = index;
  }
}

std::vector<IndexRun> contiguous_runs(const std::vector<std::int64_t>& sorted_indices) {
  std::vector<IndexRun> runs;
  for (const std::int64_t index : sorted_indices) {
    if (!runs.empty() && runs.back().first + runs.back().length == index) {
      ++runs.back().length;
    } else {
      runs.push_back({index, 1});
    }
  }
  return runs;
}

std::string Source::locate(std::int64_t index) const { return "sample " + std::to_string(index) + " of " + describe(); }

}  // namespace dpt::data
