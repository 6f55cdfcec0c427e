// Glob expansion of the config's data file entries, with errors that name the config key and the pattern.
#include "data/data_files.h"

#include <glob.h>

#include <algorithm>
#include <set>

#include "core/check.h"
#include "core/config.h"

namespace dpt::data {
namespace {

bool is_glob(const std::string& entry) { return entry.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_matches(const std::string& pattern, const std::string& key) {
  glob_t matches{};
  const int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
  ::globfree(&matches);
  DPT_CHECK(status == 0 && !paths.empty(), key, " = \"", pattern, "\" matches no file",
            status == GLOB_ABORTED ? " (a directory on the way cannot be read)" : "",
            ": check the pattern and the directory you run from");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

std::vector<std::string> expand_data_files(const std::vector<std::string>& entries, const std::string& key) {
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (const auto& entry : entries) {
    if (entry.empty()) continue;
    for (const auto& path : is_glob(entry) ? glob_matches(entry, key) : std::vector<std::string>{entry}) {
      DPT_CHECK(seen.insert(path).second, key, " names ", path,
                " twice (overlapping globs or paths): its samples would be seen twice per epoch; list it once");
      files.push_back(path);
    }
  }
  return files;
}

std::vector<std::string> split_files(const Config& config, const std::string& split) {
  const std::string key = "data." + split;
  std::vector<std::string> entries{config.get_string(key)};
  const auto& more = config.get_strings(key + "_files");
  entries.insert(entries.end(), more.begin(), more.end());
  const std::vector<std::string> files = expand_data_files(entries, key + " / " + key + "_files");
  DPT_CHECK(split != "train" || !files.empty(), "no training data: set data.train to a path or a glob");
  return files;
}

}  // namespace dpt::data
