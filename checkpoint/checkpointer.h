// Checkpointer: the training side of a CheckpointStore — synchronous or background saves, retention and the
// `best` alias after every publish, the store's writer lock, and what a failed save does.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_store.h"
#include "core/config.h"
#include "core/published_checkpoint.h"

namespace dpt::checkpoint {

// The checkpoint.* config keys that shape saving.
struct CheckpointerOptions {
  std::string dir;
  bool async = false;          // checkpoint.async
  RetentionPolicy retention;   // checkpoint.keep_last, checkpoint.keep_every
  std::string best_metric;     // checkpoint.best_metric ("" : no `best` alias)
  bool best_is_max = true;     // checkpoint.best_mode = "max"
  bool stop_on_error = true;   // checkpoint.on_error = "stop"

  static CheckpointerOptions from_config(const Config& config);
};

// checkpoint.*: the store, when to save, retention, the `best` alias, async saves, what a failed save does.
std::vector<ConfigKey> config_keys();

// `tensor` in host memory for a checkpoint. With `copy` (an async save, which training overlaps) a copy that
// training cannot change; without it (a synchronous save publishes before training goes on) a CPU tensor
// is used as it is, which spares a copy of the whole model and optimizer state; other devices copy anyway.
at::Tensor host_tensor(const at::Tensor& tensor, bool copy = true);

// What the checkpoint records about the build: the project's git commit and the HDF5 version (both at configure
// time), and the LibTorch and MPI library versions.
nlohmann::json build_info();

class Checkpointer {
 public:
  // Opens the store at options.dir, checks that it is writable and takes its writer lock; each fails with a
  // dpt::Error.
  // `on_published` (optional) is called after each successful publish, retention and `best` update, on the
  // thread that saved (the background thread when async), so that tracking can report the version; it must not
  // throw.
  explicit Checkpointer(CheckpointerOptions options,
                        std::function<void(const PublishedCheckpoint&)> on_published = nullptr);
  // Waits for a save in flight; its error, if any, is reported on stderr, not thrown.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Publishes `contents` (tensors already in host memory, see host_tensor), then collects garbage and updates
  // `best`. Synchronous: returns when published. Async: waits for the previous save (at most one in flight),
  // then hands this one to a background thread and returns at once. A failed save throws (on_error = stop) or
  // prints one warning line (continue); a background failure surfaces at the next save() or wait().
  void save(CheckpointContents contents);

  // Waits for the save in flight (handling its error as save() does); returns the newest version this
  // Checkpointer published ("" when none).
  std::string wait();

  const CheckpointStore& store() const { return *store_; }
  bool async() const { return options_.async; }

 private:
  void publish(const CheckpointContents& contents);
  void update_best(const std::string& version, const nlohmann::json& state);
  void handle(std::exception_ptr error);
  void join_worker();

  CheckpointerOptions options_;
  std::function<void(const PublishedCheckpoint&)> on_published_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<WriterLock> lock_;
  std::thread worker_;
  std::exception_ptr worker_error_;
  std::string last_version_;
};

}  // namespace dpt::checkpoint
