// CheckpointStore: versioned, content-addressed checkpoints in a local directory, published atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"

namespace dpt::checkpoint {

// What one version holds. File names are plain names (no '/'); "model" is stored as model.safetensors.
struct CheckpointContents {
  std::map<std::string, NamedTensors> tensors;  // file stem -> tensors, each stored as <stem>.safetensors
  std::map<std::string, std::string> blobs;     // other files by name -> bytes, e.g. "optimizer.pt"
  nlohmann::json state;                         // step, epoch, cursor, config, metrics, ... (caller-defined)
};

struct VersionInfo {
  std::string name;     // "v000003"
  std::string path;     // the version directory
  std::int64_t step;    // state["step"] at publish time, -1 when the state had none
  std::string created;  // UTC, ISO-8601
};

// Layout under root:
//   blobs/sha256/<hex>              file contents, stored once however many versions share them
//   versions/v000001/manifest.json  format version, created, step, files (name, kind, size, sha256), state
//   aliases/latest                  the newest version's name, for tools and people; resolve() uses versions/
//   staging/                        versions being assembled; never read
// A version exists once its directory (with its manifest) has been renamed into versions/, so a crash at any
// point leaves either the old set of versions or the new one. One writer at a time (rank 0); any readers.
class CheckpointStore {
 public:
  explicit CheckpointStore(std::string root);  // does not create anything yet

  const std::string& root() const { return root_; }

  // Creates the store's directories if needed; a dpt::Error naming the directory if it cannot be written.
  void check_writable() const;

  // Writes a new version and returns its name; errors name the path and leave earlier versions intact.
  std::string publish(const CheckpointContents& contents);

  std::vector<VersionInfo> list() const;  // oldest first

  // "latest", "v3", "v000003", or a path to a version directory -> the version directory's path.
  std::string resolve(const std::string& ref) const;

  // Verifies every file's size and sha256 before returning; a damaged version names the file and an older one.
  CheckpointContents load(const std::string& ref) const;

  // The checks of load() without decoding.
  void verify(const std::string& ref) const;

  // Removes all but the newest k versions (0: keep all) and the blobs no remaining version references.
  void keep_last(int k);

 private:
  std::string root_;
};

}  // namespace dpt::checkpoint
