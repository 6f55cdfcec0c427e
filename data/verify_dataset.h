// verify_dataset: reads every sample of a split end to end, so a bad file fails now and not an hour into a run.
#pragma once

#include <string>
#include <vector>

namespace dpt::data {

// Opens the files as one source (same checks as training: datasets exist, lengths agree, dtypes and shapes are
// supported and agree across files), reads every sample in large sorted blocks, and checks that float inputs are
// finite and targets are >= 0. Returns one line per file (samples, label range) plus a total; throws a dpt::Error
// naming the file, dataset and sample on the first problem.
std::string verify_dataset(const std::vector<std::string>& files, const std::string& inputs,
                           const std::string& targets);

}  // namespace dpt::data
