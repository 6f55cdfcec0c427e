// Dataset digest for lineage: files, sizes, dataset shapes and dtypes, and a content hash, cached beside the data.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpt::data {

// {"sha256": <hash of the files' hashes in order>, "bytes": total, "files": [{"path", "size", "mtime_ns",
// "sha256", "md5" (as DVC computes it), "datasets": [{"name", "dtype", "shape"}]}]}. The content hash ignores paths, so moved data keeps it.
// Each file's entry is cached in a hidden `.<name>.dptrain-digest.json` in the file's directory and recomputed
// only when the file's size or modification time change; a read-only directory just means no cache.
nlohmann::json dataset_digest(const std::vector<std::string>& files);

// The cache file that holds `file`'s digest entry.
std::string digest_cache_path(const std::string& file);

}  // namespace dpt::data
