// Loader: sorted contiguous reads, restored sampler order, float32 normalisation, and the prefetching I/O thread.
#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <utility>

#include <ATen/Dispatch.h>

#include "core/check.h"

namespace dpt::data {

Batch assemble_batch(Source& source, const StepSamples& step, std::int64_t epoch, const Normalization& norm,
                     bool pin) {
  const auto& indices = step.indices;
  std::vector<std::int64_t> by_index(indices.size());
  std::iota(by_index.begin(), by_index.end(), std::int64_t{0});
  std::sort(by_index.begin(), by_index.end(), [&](std::int64_t a, std::int64_t b) {
    return indices[static_cast<std::size_t>(a)] < indices[static_cast<std::size_t>(b)];
  });
  std::vector<std::int64_t> sorted(indices.size());
  // rank[i] = where sample i of the step sits among the sorted reads.
  std::vector<std::int64_t> rank(indices.size());
  for (std::size_t k = 0; k < by_index.size(); ++k) {
    sorted[k] = indices[static_cast<std::size_t>(by_index[k])];
    rank[static_cast<std::size_t>(by_index[k])] = static_cast<std::int64_t>(k);
  }
  const SampleBatch read = source.read_sorted(sorted);
  // One pass restores the step's order, converts to float32 and normalises: (x * scale - mean) / std, as two
  // float32 operations, x * (scale / std) + (-mean / std).
  at::Tensor inputs = at::empty(read.inputs.sizes(), at::kFloat);
  const std::int64_t per_sample = indices.empty() ? 0 : read.inputs.numel() / static_cast<std::int64_t>(indices.size());
  const auto factor = static_cast<float>(norm.scale / norm.std);
  const auto offset = static_cast<float>(-norm.mean / norm.std);
  AT_DISPATCH_ALL_TYPES(read.inputs.scalar_type(), "assemble_batch", [&] {
    const scalar_t* from = read.inputs.data_ptr<scalar_t>();
    float* to = inputs.data_ptr<float>();
    for (std::size_t i = 0; i < rank.size(); ++i) {
      const scalar_t* sample = from + rank[i] * per_sample;
      float* out = to + static_cast<std::int64_t>(i) * per_sample;
      for (std::int64_t j = 0; j < per_sample; ++j) {
        const float scaled = static_cast<float>(sample[j]) * factor;
        out[j] = scaled + offset;
      }
    }
  });
  if (inputs.dim() == 3) inputs = inputs.unsqueeze(1);
  at::Tensor targets = read.targets.index_select(0, at::tensor(rank, at::kLong));
  if (pin) {
    inputs = inputs.pin_memory();
    targets = targets.pin_memory();
  }
  return {inputs, targets, step.global_batch, step.cursor_after, epoch, indices, step.step_global, step.step_local,
          step.ends_step};
}

Loader::Loader(std::shared_ptr<Source> source, Sampler sampler, Normalization norm, int prefetch, bool pin_memory)
    : source_(std::move(source)),
      sampler_(sampler),
      norm_(norm),
      prefetch_(static_cast<std::size_t>(std::max(prefetch, 0))),
      // pin_memory() needs a CUDA runtime; a CPU-only LibTorch would throw on the first batch.
      pin_memory_(pin_memory && at::hasCUDA()),
      reader_sampler_(std::move(sampler)) {
  DPT_CHECK(source_ != nullptr, "Loader needs a data source");
  DPT_CHECK(prefetch >= 0, "data.prefetch must be >= 0, got ", prefetch);
  DPT_CHECK(norm.std != 0.0, "normalisation std must not be 0: fix data.std");
  source_name_ = source_->describe();
  DPT_CHECK(sampler_.num_samples() <= source_->size(), "the sampler covers ", sampler_.num_samples(),
            " samples but ", source_name_, " holds only ", source_->size());
  if (prefetch_ > 0) {
    read_ahead_ = std::make_unique<ReadAhead>(source_);
    reader_ = std::thread([this] { produce(); });
  }
}

Loader::ReadAhead::ReadAhead(std::shared_ptr<Source> source)
    : source_(std::move(source)), thread_([this] {
        std::unique_lock<std::mutex> lock(mutex_);
        while (true) {
          changed_.wait(lock, [&] { return stop_ || !pending_.empty(); });
          if (stop_) return;
          std::vector<std::int64_t> indices = std::move(pending_.front());
          pending_.pop_front();
          lock.unlock();
          // A failed hint costs only speed; the read that follows reports any real problem.
          try {
            source_->will_need(indices);
          } catch (const std::exception&) {
          }
          lock.lock();
        }
      }) {}

Loader::ReadAhead::~ReadAhead() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Loader::ReadAhead::announce(std::vector<std::int64_t> sorted_indices) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(sorted_indices));
  }
  changed_.notify_all();
}

Loader::~Loader() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void Loader::start_epoch(std::int64_t epoch, std::int64_t cursor) {
  sampler_.set_epoch(epoch, cursor);
  started_ = true;
  if (prefetch_ == 0) return;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    reader_sampler_ = sampler_;
    ++generation_;
    queue_.clear();
    producing_ = true;
  }
  changed_.notify_all();
}

std::optional<Batch> Loader::next() {
  if (!started_) start_epoch(sampler_.epoch(), sampler_.cursor());
  const auto begin = std::chrono::steady_clock::now();
  const auto record_wait = [&] {
    last_wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  };
  if (prefetch_ == 0) {
    Slot slot;
    if (sampler_.has_next()) {
      const StepSamples step = sampler_.next();
      try {
        slot.batch = assemble_batch(*source_, step, sampler_.epoch(), norm_, pin_memory_);
      } catch (...) {
        slot.error = std::current_exception();
      }
    }
    record_wait();
    return deliver(slot);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !queue_.empty(); });
  record_wait();
  // The end marker and errors stay queued, so every later next() of this epoch answers the same.
  if (!queue_.front().batch) return deliver(queue_.front());
  Slot slot = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  changed_.notify_all();
  sampler_.next();
  return deliver(slot);
}

std::optional<Batch> Loader::deliver(Slot& slot) {
  if (slot.error) {
    try {
      std::rethrow_exception(slot.error);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      DPT_THROW("reading a batch from ", source_name_, " failed: ", e.what());
    }
  }
  return std::move(slot.batch);
}

// The I/O thread reads one batch at a time, which on a shuffled epoch means one small read in flight. So it also
// announces the `prefetch_` batches after the one it reads (Source::will_need), and the OS fetches those in the
// background, many requests at once.
void Loader::produce() {
  std::unique_lock<std::mutex> lock(mutex_);
  Sampler announcer = reader_sampler_;  // the last batch announced; `announced_ahead` steps ahead of the reader
  std::size_t announced_ahead = 0;
  std::uint64_t announced_generation = generation_;
  while (true) {
    changed_.wait(lock, [&] { return stop_ || (producing_ && queue_.size() < prefetch_); });
    if (stop_) return;
    if (!reader_sampler_.has_next()) {
      queue_.push_back(Slot{});
      producing_ = false;
      changed_.notify_all();
      continue;
    }
    const std::uint64_t generation = generation_;
    if (generation != announced_generation) {
      announcer = reader_sampler_;
      announced_ahead = 0;
      announced_generation = generation;
    }
    const StepSamples step = reader_sampler_.next();
    const std::int64_t epoch = reader_sampler_.epoch();
    if (announced_ahead > 0) {
      --announced_ahead;
    } else {
      announcer.next();
    }
    std::vector<std::vector<std::int64_t>> upcoming;
    for (; announced_ahead < prefetch_ && announcer.has_next(); ++announced_ahead) {
      upcoming.push_back(announcer.next().indices);
    }
    lock.unlock();
    for (auto& indices : upcoming) {
      std::sort(indices.begin(), indices.end());
      indices.erase(std::unique(indices.begin(), indices.end()), indices.end());  // padding repeats samples
      read_ahead_->announce(std::move(indices));
    }
    Slot slot;
    try {
      slot.batch = assemble_batch(*source_, step, epoch, norm_, pin_memory_);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    if (generation != generation_) continue;
    if (slot.error) producing_ = false;
    queue_.push_back(std::move(slot));
    changed_.notify_all();
  }
}

}  // namespace dpt::data
