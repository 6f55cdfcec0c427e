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
  std::map<std::string, std::string> blobs;     // other files by name -> bytes
  nlohmann::json state;                         // step, epoch, cursor, config, metrics, ... (caller-defined)
  std::string version;                          // the version it was loaded from ("v000003"; "" when not loaded)
};

struct VersionInfo {
  std::string name;     // "v000003"
  std::string path;     // the version directory
  std::int64_t step;    // state["step"] at publish time, -1 when the state had none
  std::string created;  // UTC, ISO-8601
};

// A version's manifest and its files' bytes, each checked against the manifest's size and sha256.
struct VerifiedVersion {
  std::string name;
  nlohmann::json manifest;
  std::map<std::string, std::string> files;  // file name -> bytes
};

// Lower-case hex sha256 of `bytes`: how the store names blobs and how manifests record files.
std::string sha256_hex(const std::string& bytes);

// Which versions garbage collection keeps; aliased versions and versions a reader holds are always kept.
struct RetentionPolicy {
  std::int64_t keep_last = 0;   // the newest K versions (0: every version)
  std::int64_t keep_every = 0;  // every version whose number is a multiple of M (0: none by this rule)
};

// An exclusive flock on <root>/locks/writer.lock for as long as the object lives: one job writes a store at a
// time. The lock dies with the process, so a killed job never leaves a stale lock behind.
class WriterLock {
 public:
  explicit WriterLock(const std::string& root);  // a dpt::Error naming the holder when another job has it
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  int fd_ = -1;
};

// Layout under root:
//   blobs/sha256/<hex>              file contents, stored once however many versions share them
//   versions/v000001/manifest.json  format version, created, step, files (name, kind, size, sha256, md5), state
//   aliases/<name>                  "latest", "best" and user tags: a version's name
//   locks/writer.lock               flock of the job writing the store (see WriterLock)
//   locks/v000001.lock              shared flock of each reader of v000001; GC skips versions it cannot lock
//   staging/                        versions being assembled or removed; never read
// A version exists once its directory (with its manifest) has been renamed into versions/, so a crash at any
// point leaves either the old set of versions or the new one. One writer at a time; any readers.
class CheckpointStore {
 public:
  explicit CheckpointStore(std::string root);  // does not create anything yet

  const std::string& root() const { return root_; }

  // Creates the store's directories if needed; a dpt::Error naming the directory if it cannot be written.
  void check_writable() const;

  // Writes a new version and returns its name; errors name the path and leave earlier versions intact.
  std::string publish(const CheckpointContents& contents);

  std::vector<VersionInfo> list() const;  // oldest first

  // "latest", "v3", "v000003", an alias ("best", a tag), or a path to a version directory -> its path.
  std::string resolve(const std::string& ref) const;

  // Reads and verifies every file of a version (size and sha256) while holding its reader lock. For "latest",
  // a damaged or partial newest version is skipped for the next older one, and one line per skipped version
  // is appended to `skipped`; any other ref must verify or a dpt::Error names the file and an older version.
  VerifiedVersion read(const std::string& ref, std::vector<std::string>* skipped = nullptr) const;
  CheckpointContents load(const std::string& ref, std::vector<std::string>* skipped = nullptr) const;

  // The checks of read() without keeping the bytes.
  void verify(const std::string& ref) const;

  // The manifest alone (parsed and format-checked, files not verified).
  nlohmann::json manifest(const std::string& ref) const;

  // Points alias `name` (a tag or "best") at the version `ref` resolves to. Names that look like versions and
  // "latest" are refused, because resolve() would never reach them.
  void set_alias(const std::string& name, const std::string& ref);
  std::map<std::string, std::string> aliases() const;  // name -> version name, "latest" included

  // Removes the versions `policy` does not keep, unless an alias points at them or a reader holds them, then
  // the blobs no remaining version references and what crashed writers left in staging/. The caller holds
  // the WriterLock (so no publish is half done). Returns the names of the removed versions.
  std::vector<std::string> gc(const RetentionPolicy& policy);

 private:
  std::string root_;
};

}  // namespace dpt::checkpoint
