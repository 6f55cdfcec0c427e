// Sampler: a portable epoch permutation and the cursor arithmetic that shards each global batch across ranks.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/check.h"

namespace dpt::data {
namespace {

// splitmix64 (Steele, Lea, Flood 2014): tiny, well mixed, and fully specified, so orders never depend on the
// standard library's distributions, which differ between implementations.
struct SplitMix64 {
  std::uint64_t state;

  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound) without modulo bias: reject the top partial range.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t x = next();
    while (x >= limit) x = next();
    return x % bound;
  }
};

}  // namespace

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
                 bool shuffle, LastBatch last_batch)
    : num_samples_(num_samples),
      batch_per_rank_(batch_per_rank),
      rank_(rank),
      world_size_(world_size),
      seed_(seed),
      shuffle_(shuffle),
      last_batch_(last_batch) {
  DPT_CHECK(num_samples > 0, "the dataset has no samples (num_samples = ", num_samples,
            "): check data.train points at a non-empty file");
  DPT_CHECK(batch_per_rank > 0, "batch size per rank must be positive, got ", batch_per_rank);
  DPT_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "rank ", rank, " is outside world size ", world_size);
  DPT_CHECK(num_samples >= world_size, num_samples, " samples cannot be shared by ", world_size,
            " ranks: every rank needs at least one sample; use more data or fewer ranks");
  DPT_CHECK(last_batch != LastBatch::DropLast || num_samples >= global_batch_size(), "drop_last with ", num_samples,
            " samples and a global batch of ", global_batch_size(), " (", world_size, " ranks x ", batch_per_rank,
            ") leaves no full batch: lower the batch size or set data.last_batch = \"uneven\" or \"pad\"");
  set_epoch(0, 0);
}

void Sampler::set_epoch(std::int64_t epoch, std::int64_t cursor) {
  DPT_CHECK(epoch >= 0, "epoch must be >= 0, got ", epoch);
  DPT_CHECK(cursor >= 0 && cursor <= num_samples_, "sample cursor ", cursor, " is outside [0, ", num_samples_,
            "]: the checkpoint was made with a different dataset; point data.train at the original data");
  if (order_.empty() || epoch != epoch_) order_ = epoch_order(seed_, epoch, num_samples_, shuffle_);
  epoch_ = epoch;
  cursor_ = cursor;
}

bool Sampler::has_next() const {
  const std::int64_t left = num_samples_ - cursor_;
  return last_batch_ == LastBatch::DropLast ? left >= global_batch_size() : left > 0;
}

StepSamples Sampler::next() {
  DPT_CHECK(has_next(), "Sampler::next() called at the end of epoch ", epoch_, " (cursor ", cursor_,
            "): check has_next() first");
  const std::int64_t left = std::min(global_batch_size(), num_samples_ - cursor_);
  const std::int64_t global = last_batch_ == LastBatch::Pad ? global_batch_size() : left;
  const std::int64_t begin = cursor_ + global * rank_ / world_size_;
  const std::int64_t end = cursor_ + global * (rank_ + 1) / world_size_;
  StepSamples step{{}, global, cursor_ + left};
  step.indices.reserve(static_cast<std::size_t>(end - begin));
  // Positions past the end of the epoch wrap to its start (modulo N also covers N < world * batch).
  for (std::int64_t position = begin; position < end; ++position) {
    const std::int64_t wrapped = position < num_samples_ ? position : (position - num_samples_) % num_samples_;
    step.indices.push_back(order_[static_cast<std::size_t>(wrapped)]);
  }
  cursor_ = step.cursor_after;
  return step;
}

std::int64_t Sampler::steps_per_epoch() const {
  const std::int64_t g = global_batch_size();
  return last_batch_ == LastBatch::DropLast ? num_samples_ / g : (num_samples_ + g - 1) / g;
}

}  // namespace dpt::data
