// CheckpointStore: the interface of a versioned checkpoint store (publish, resolve, load, list, verify, gc) and
// open_checkpoint_store, which picks the implementation for a location.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
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
  std::string store;                            // the root of the store that holds that version ("" when not loaded)
  std::string manifest_sha256;                  // of the version's manifest bytes ("" when not loaded)
};

struct VersionInfo {
  std::string name;     // "v000003"
  std::string path;     // where the version lives (what resolve() returns for it)
  std::int64_t step;    // state["step"] at publish time, -1 when the state had none
  std::string created;  // UTC, ISO-8601
};

// A version's manifest and its files' bytes, each checked against the manifest's size and sha256.
struct VerifiedVersion {
  std::string name;
  std::string store;            // the root of the store that holds it
  std::string manifest_sha256;  // of the manifest's bytes, as PublishedCheckpoint::manifest_sha256
  nlohmann::json manifest;
  std::map<std::string, std::string> files;  // file name -> bytes
};

// Which versions garbage collection keeps; aliased versions and versions a reader holds are always kept.
struct RetentionPolicy {
  std::int64_t keep_last = 0;   // the newest K versions (0: every version)
  std::int64_t keep_every = 0;  // every version whose number is a multiple of M (0: none by this rule)
};

// Lower-case hex digests over the concatenation of `pieces`: sha256 names blobs and checks every file on load;
// md5 is recorded beside it because object stores check uploads with it (S3 ETags, Content-MD5).
enum class Digest { kSha256, kMd5 };
std::string digest_hex(const std::vector<std::string_view>& pieces, Digest digest);
std::string sha256_hex(const std::string& bytes);

// Held by the one job that writes a store (publish, set_alias, gc) for as long as it lives; see lock_writer().
class WriterLock {
 public:
  WriterLock() = default;
  virtual ~WriterLock() = default;
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
};

// A store of immutable checkpoint versions, each a manifest (format version, created, step, files with size,
// sha256 and md5, the caller's state) and its files. A version exists once its manifest is published
// atomically, so a crash leaves either the old set of versions or the new one. Refs name versions: "latest"
// (the newest), "v3" or "v000003", an alias ("best", a tag), or a version's location (VersionInfo::path).
// One writer at a time (lock_writer), any number of readers. Errors are dpt::Error naming the store, the
// version and the file, and leave earlier versions intact.
class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;

  // Where the store lives, for messages and for tracking (LocalCheckpointStore: its absolute directory).
  virtual const std::string& root() const = 0;

  // Creates what the store needs if it is missing; a dpt::Error naming the location if it cannot be written.
  virtual void check_writable() const = 0;

  // Makes this process the store's one writer until the lock is destroyed; a dpt::Error naming the holder when
  // another job has it. A killed job must never leave a stale lock behind.
  virtual std::unique_ptr<WriterLock> lock_writer() = 0;

  // Writes a new version and returns its name ("v000004").
  virtual std::string publish(const CheckpointContents& contents) = 0;

  virtual std::vector<VersionInfo> list() const = 0;  // oldest first

  // A ref -> the location of the version it names (what list() reports as path).
  virtual std::string resolve(const std::string& ref) const = 0;

  // Reads and verifies every file of a version (size and sha256): the bytes (read) or the decoded tensor files,
  // blobs and state (load). For "latest", a damaged or partial newest version is skipped for the next older one
  // and one line per skipped version is appended to `skipped`; any other ref must verify or a dpt::Error names
  // the file and an older version. A version being read is never removed by gc().
  virtual VerifiedVersion read(const std::string& ref, std::vector<std::string>* skipped = nullptr) const = 0;
  virtual CheckpointContents load(const std::string& ref, std::vector<std::string>* skipped = nullptr) const = 0;

  // The checks of read() without keeping the bytes.
  virtual void verify(const std::string& ref) const = 0;

  // The bytes of a version's manifest (format-checked, files not verified): what tracking uploads and hashes.
  virtual std::string manifest(const std::string& ref) const = 0;

  // Points alias `name` (a tag or "best") at the version `ref` resolves to. Names that look like versions and
  // "latest" are refused, because resolve() would never reach them.
  virtual void set_alias(const std::string& name, const std::string& ref) = 0;
  virtual std::map<std::string, std::string> aliases() const = 0;  // name -> version name, "latest" included

  // Removes the versions `policy` does not keep, unless an alias points at them or a reader holds them, then
  // the files no remaining version references and what crashed writers left behind. The caller holds the
  // writer lock (so no publish is half done). Returns the names of the removed versions.
  virtual std::vector<std::string> gc(const RetentionPolicy& policy) = 0;
};

// The store at `location`: a directory path (LocalCheckpointStore). Opening creates nothing. A location with a
// scheme this build has no store for ("s3://...") is a dpt::Error that lists what is supported.
std::unique_ptr<CheckpointStore> open_checkpoint_store(const std::string& location);

}  // namespace dpt::checkpoint
