// The HDF5 files of a split, from config strings that may be paths or globs (data.train + data.train_files).
#pragma once

#include <string>
#include <vector>

namespace dpt {
class Config;
}

namespace dpt::data {

// Each entry is a path or a glob (`*`, `?`, `[...]`); a glob expands to its matches sorted by name, a plain path is
// kept as it is (a missing file is reported when it is opened, with its name). Empty entries are skipped. A glob
// that matches nothing, or a file named twice, is an error naming `key` (the config key the entries came from).
std::vector<std::string> expand_data_files(const std::vector<std::string>& entries, const std::string& key);

// The files of split "train" (data.train, then data.train_files) or "test" (data.test, then data.test_files), expanded.
// An empty list for "test" means no evaluation; for "train" it is an error (data.train is required anyway).
std::vector<std::string> split_files(const Config& config, const std::string& split);

}  // namespace dpt::data
