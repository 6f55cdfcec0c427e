// Sampler: a portable epoch permutation and the cursor arithmetic that shards each global batch across ranks.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/check.h"
#include "core/splitmix64.h"

namespace dpt::data {

std::vector<std::int64_t> epoch_order(std::uint64_t seed, std::int64_t epoch, std::int64_t num_samples, bool shuffle) {
  DPT_CHECK(num_samples >= 0, "epoch_order: num_samples must be >= 0, got ", num_samples);
  std::vector<std::int64_t> order(static_cast<std::size_t>(num_samples));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (!shuffle) return order;
  // Mix the seed once more with the epoch so that neighbouring (seed, epoch) pairs give unrelated streams.
  SplitMix64 seeder{seed};
  SplitMix64 rng{seeder.next() ^ SplitMix64{static_cast<std::uint64_t>(epoch)}.next()};
  for (std::int64_t i = num_samples - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

LastBatch parse_last_batch(const std::string& name) {
  if (name == "uneven") return LastBatch::Uneven;
  if (name == "drop_last") return LastBatch::DropLast;
  if (name == "pad") return LastBatch::Pad;
  DPT_THROW("data.last_batch = \"", name, "\" is not a last-batch mode: use \"uneven\", \"drop_last\" or \"pad\"");
}

Sampler::Sampler(std::int64_t num_samples, std::int64_t batch_per_rank, int rank, int world_size, std::uint64_t seed,
                 bool shuffle, LastBatch last_batch, std::int64_t batches_per_step)
    : num_samples_(num_samples),
      batch_per_rank_(batch_per_rank),
      rank_(rank),
      world_size_(world_size),
      seed_(seed),
      shuffle_(shuffle),
      last_batch_(last_batch),
      batches_per_step_(batches_per_step) {
  DPT_CHECK(num_samples > 0, "the dataset has no samples (num_samples = ", num_samples,
            "): check data.train points at a non-empty file");
  DPT_CHECK(batch_per_rank > 0, "batch size per rank must be positive, got ", batch_per_rank);
  DPT_CHECK(batches_per_step > 0, "batches per optimizer step must be positive, got ", batches_per_step);
  DPT_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "rank ", rank, " is outside world size ", world_size);
  DPT_CHECK(num_samples >= world_size, num_samples, " samples cannot be shared by ", world_size,
            " ranks: every rank needs at least one sample; use more data or fewer ranks");
  DPT_CHECK(last_batch != LastBatch::DropLast || num_samples >= samples_per_step(), "drop_last with ", num_samples,
            " samples and a step of ", samples_per_step(), " (", world_size, " ranks x ", batch_per_rank,
            batches_per_step > 1 ? " x " + std::to_string(batches_per_step) + " batches" : std::string(),
            ") leaves no full step: lower the batch size", batches_per_step > 1 ? " or the batches per step" : "",
            ", or set data.last_batch = \"uneven\" or \"pad\"");
  set_epoch(0, 0);
}

void Sampler::set_epoch(std::int64_t epoch, std::int64_t cursor) {
  DPT_CHECK(epoch >= 0, "epoch must be >= 0, got ", epoch);
  DPT_CHECK(cursor >= 0 && cursor <= num_samples_, "sample cursor ", cursor, " is outside [0, ", num_samples_,
            "]: the checkpoint was made with a different dataset; point data.train at the original data");
  if (order_.empty() || epoch != epoch_) order_ = epoch_order(seed_, epoch, num_samples_, shuffle_);
  epoch_ = epoch;
  cursor_ = cursor;
  step_start_ = cursor;
  batch_in_step_ = 0;
}

std::int64_t Sampler::step_size_at(std::int64_t start) const {
  return last_batch_ == LastBatch::Uneven ? std::min(samples_per_step(), num_samples_ - start) : samples_per_step();
}

bool Sampler::has_next() const {
  if (batch_in_step_ > 0) return true;  // a step once begun runs to its last batch
  const std::int64_t left = num_samples_ - cursor_;
  return last_batch_ == LastBatch::DropLast ? left >= samples_per_step() : left > 0;
}

StepSamples Sampler::next() {
  DPT_CHECK(has_next(), "Sampler::next() called at the end of epoch ", epoch_, " (cursor ", cursor_,
            "): check has_next() first");
  if (batch_in_step_ == 0) step_start_ = cursor_;
  const std::int64_t step_end = step_start_ + step_size_at(step_start_);
  const std::int64_t g = global_batch_size();
  const std::int64_t position = step_start_ + batch_in_step_ * g;
  const std::int64_t global = std::min(g, step_end - position);
  const std::int64_t begin = position + global * rank_ / world_size_;
  const std::int64_t end = position + global * (rank_ + 1) / world_size_;
  StepSamples batch{{}, global, std::min(position + global, num_samples_), step_end - step_start_, 0,
                    position + global == step_end};
  for (std::int64_t p = step_start_; p < step_end; p += g) {
    const std::int64_t size = std::min(g, step_end - p);
    batch.step_local += size * (rank_ + 1) / world_size_ - size * rank_ / world_size_;
  }
  batch.indices.reserve(static_cast<std::size_t>(end - begin));
  // Positions past the end of the epoch (Pad) wrap to its start (modulo N also covers N < world * batch).
  for (std::int64_t p = begin; p < end; ++p) {
    const std::int64_t wrapped = p < num_samples_ ? p : (p - num_samples_) % num_samples_;
    batch.indices.push_back(order_[static_cast<std::size_t>(wrapped)]);
  }
  cursor_ = batch.cursor_after;
  batch_in_step_ = batch.ends_step ? 0 : batch_in_step_ + 1;
  return batch;
}

std::int64_t Sampler::steps_from(std::int64_t cursor) const {
  const std::int64_t left = num_samples_ - cursor;
  const std::int64_t s = samples_per_step();
  return last_batch_ == LastBatch::DropLast ? left / s : (left + s - 1) / s;
}

std::int64_t Sampler::steps_per_epoch() const { return steps_from(0); }

std::int64_t Sampler::position_after(std::int64_t cursor, std::int64_t steps) const {
  const std::int64_t first = steps_from(cursor);
  if (steps < first) return cursor + steps * samples_per_step();
  const std::int64_t rest = steps - first;
  return num_samples_ * (1 + rest / steps_per_epoch()) + rest % steps_per_epoch() * samples_per_step();
}

}  // namespace dpt::data
