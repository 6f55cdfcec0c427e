// Loader: batches in sampler order, read by one background I/O thread into a bounded prefetch queue.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "data/sampler.h"
#include "data/source.h"

namespace dpt::data {

// x * scale, then (x - mean) / std; e.g. scale = 1/255 turns uint8 pixels into [0, 1] first.
struct Normalization {
  double scale = 1.0;
  double mean = 0.0;
  double std = 1.0;
};

struct Batch {
  at::Tensor inputs;   // float32 [n, 1, H, W] for 2-D samples (a channel axis is added), else [n, ...sample_shape]
  at::Tensor targets;  // [n, ...] as the Source gives them (int64 [n] class labels from HDF5)
  std::int64_t global_batch;
  std::int64_t cursor_after;
  std::int64_t epoch;
  std::vector<std::int64_t> indices;  // the source's sample index of each row, for errors that name a sample
  std::int64_t step_global = 0;       // the optimizer step's samples across ranks (see StepSamples)
  std::int64_t step_local = 0;        // this rank's samples over the optimizer step's batches
  bool ends_step = true;              // the last batch of its optimizer step
};

// Reads the samples of one step (in any order) and returns them normalised, in the order given; in page-locked
// (pinned) memory when `pin`, so a copy to a CUDA device can be asynchronous.
Batch assemble_batch(Source& source, const StepSamples& step, std::int64_t epoch, const Normalization& norm,
                     bool pin = false);

class Loader {
 public:
  // prefetch = batches read ahead by the I/O thread; 0 reads inline in next() and starts no thread.
  // pin_memory: batches in pinned host memory, for a CUDA device; ignored when this LibTorch has no CUDA.
  Loader(std::shared_ptr<Source> source, Sampler sampler, Normalization norm, int prefetch, bool pin_memory = false);
  ~Loader();  // stops the I/O thread cleanly
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Drops anything prefetched and starts reading at (epoch, cursor). next() without it starts where the sampler is.
  void start_epoch(std::int64_t epoch, std::int64_t cursor = 0);
  // std::nullopt at the end of the epoch; an I/O error is rethrown here as dpt::Error, in batch order.
  std::optional<Batch> next();
  // Positioned after the last batch next() returned (prefetching does not move it): its cursor is what to save.
  const Sampler& sampler() const { return sampler_; }
  const Source& source() const { return *source_; }
  double last_wait_seconds() const { return last_wait_seconds_; }

 private:
  // One queue entry: a batch, the end of the epoch (no batch, no error) or the I/O thread's failure.
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  // Hands Source::will_need to a thread of its own: a hint can block until the OS has queued its reads, and the
  // I/O thread should be reading meanwhile.
  class ReadAhead {
   public:
    explicit ReadAhead(std::shared_ptr<Source> source);
    ~ReadAhead();
    void announce(std::vector<std::int64_t> sorted_indices);

   private:
    std::shared_ptr<Source> source_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::vector<std::int64_t>> pending_;
    bool stop_ = false;
    std::thread thread_;
  };

  void produce();
  std::optional<Batch> deliver(Slot& slot);

  std::shared_ptr<Source> source_;
  std::string source_name_;  // describe() taken once: the Source belongs to the I/O thread while it runs
  Sampler sampler_;
  Normalization norm_;
  std::size_t prefetch_;
  bool pin_memory_;
  bool started_ = false;
  double last_wait_seconds_ = 0.0;

  // Shared with the I/O thread, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable changed_;
  Sampler reader_sampler_;   // the I/O thread's position, ahead of sampler_ by the queued batches
  std::uint64_t generation_ = 0;  // bumped by start_epoch so batches of a dropped epoch are discarded
  bool producing_ = false;
  bool stop_ = false;
  std::deque<Slot> queue_;
  std::unique_ptr<ReadAhead> read_ahead_;  // before reader_, which uses it: destroyed after the reader stops
  std::thread reader_;
};

}  // namespace dpt::data
