// SpoolFile: the append-only JSONL file that a remote sink writes ahead into, and its count of delivered entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/published_checkpoint.h"

namespace dpt::tracking {

// DIR/STEM.jsonl: the first line describes the run, every later line is one entry. Entries count from 0 and are
// only the lines that parse: a line cut short by a crash is skipped (and kept apart from the next append). Whoever
// delivers the entries records how many are done on the first line of DIR/STEM.acked (the MLflow sink itself; for
// W&B its driver process, tracking/wandb_driver.py, which reads the spool the same way).
class SpoolFile {
 public:
  // Creates DIR when missing and opens the spool for appending; throws dpt::Error naming the path.
  SpoolFile(const std::string& dir, const std::string& stem);
  ~SpoolFile();
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& acked_path() const { return acked_path_; }
  const nlohmann::json& header() const { return header_; }  // null until the first line is appended
  std::int64_t entries() const { return entries_; }

  // The entries from index `first` on, as the file holds them now.
  std::vector<nlohmann::json> read_entries(std::int64_t first) const;
  // Appends the lines with one write and makes them durable (fdatasync) before returning; the first line of an
  // empty spool becomes its header. Throws dpt::Error when the disk refuses.
  void append(const std::vector<nlohmann::json>& lines);

  // The first line of STEM.acked (0 when there is none); write_acked replaces the file in one rename.
  std::int64_t read_acked() const;
  void write_acked(std::int64_t acked) const;

 private:
  std::string path_;
  std::string acked_path_;
  nlohmann::json header_;
  std::int64_t entries_ = 0;
  int fd_ = -1;
};

// A published checkpoint as a spool entry: {"checkpoint": {version, store, step, manifest (the bytes),
// manifest_sha256, aliases}}. The manifest and aliases travel in the entry, so that a replay (even after the store
// has collected the version) sends exactly what was published.
nlohmann::json spooled_checkpoint(const PublishedCheckpoint& published);

}  // namespace dpt::tracking
