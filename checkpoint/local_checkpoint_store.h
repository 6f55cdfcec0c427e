// LocalCheckpointStore: versioned, content-addressed checkpoints in a local (or mounted) directory.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_store.h"

namespace dpt::checkpoint {

// Layout under root:
//   blobs/sha256/<hex>              file contents, stored once however many versions share them
//   versions/v000001/manifest.json  format version, created, step, files (name, kind, size, sha256, md5), state
//   aliases/<name>                  "latest", "best" and user tags: a version's name
//   locks/writer.lock               exclusive flock of the job writing the store (lock_writer); it dies with the
//                                   process, so a killed job leaves no stale lock
//   locks/v000001.lock              shared flock of each reader of v000001; GC skips versions it cannot lock
//   staging/                        versions being assembled or removed; never read
// A version is published by renaming its directory (with its manifest) into versions/. A ref may also be the
// path of a version directory, of this store or another one.
class LocalCheckpointStore final : public CheckpointStore {
 public:
  explicit LocalCheckpointStore(const std::string& root);  // does not create anything yet

  const std::string& root() const override { return root_; }
  void check_writable() const override;
  std::unique_ptr<WriterLock> lock_writer() override;
  std::string publish(const CheckpointContents& contents) override;
  std::vector<VersionInfo> list() const override;
  std::string resolve(const std::string& ref) const override;
  VerifiedVersion read(const std::string& ref, std::vector<std::string>* skipped) const override;
  CheckpointContents load(const std::string& ref, std::vector<std::string>* skipped) const override;
  void verify(const std::string& ref) const override;
  std::string manifest(const std::string& ref) const override;
  void set_alias(const std::string& name, const std::string& ref) override;
  std::map<std::string, std::string> aliases() const override;
  std::vector<std::string> gc(const RetentionPolicy& policy) override;

 private:
  std::string root_;  // absolute and normalised, without a trailing '/'
};

}  // namespace dpt::checkpoint
