// Sampler: the global sample order of an epoch and each rank's share of every step, driven by one cursor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::data {

// Global sample order of one epoch: a pure function of (seed, epoch, num_samples); the identity when !shuffle.
// The PRNG (splitmix64 + Fisher-Yates) is our own so the order is the same on every platform and LibTorch version.
std::vector<std::int64_t> epoch_order(std::uint64_t seed, std::int64_t epoch, std::int64_t num_samples, bool shuffle);

// What the final global batch of an epoch does when fewer than world * batch samples are left.
enum class LastBatch {
  Uneven,    // the short batch is split as evenly as possible over the ranks (some may get fewer, or none)
  DropLast,  // the short batch is skipped: every step has exactly world * batch samples
  Pad,       // the short batch is filled up with samples from the start of the epoch's order (as PyTorch's
             // DistributedSampler does), so every rank gets exactly `batch`; those few samples repeat once
};

// "uneven" | "drop_last" | "pad" (the values of data.last_batch) -> LastBatch; anything else is an error.
LastBatch parse_last_batch(const std::string& name);

struct StepSamples {
  std::vector<std::int64_t> indices;  // this rank's sample indices for this step, in sampler order
  std::int64_t global_batch;          // samples in this step across all ranks
  std::int64_t cursor_after;          // global cursor after this step
};

// A step at global cursor c takes order[c, c + G) with G = min(world * batch, N - c); with DropLast a short G ends
// the epoch instead, with Pad it is topped up to world * batch from order[0, ...). Rank r takes
// order[c + floor(G*r/W), c + floor(G*(r+1)/W)): W ranks x batch b see the samples of 1 rank x batch W*b, and a
// resume from the same cursor at another world size neither skips nor repeats.
class Sampler {
 public:
  Sampler(std::int64_t num_samples, std::int64_t batch_per_rank, int rank, int world_size, std::uint64_t seed,
          bool shuffle, LastBatch last_batch = LastBatch::Uneven);

  // cursor = global samples of this epoch already consumed (as saved in a checkpoint).
  void set_epoch(std::int64_t epoch, std::int64_t cursor = 0);
  bool has_next() const;
  StepSamples next();

  std::int64_t epoch() const { return epoch_; }
  std::int64_t cursor() const { return cursor_; }
  std::int64_t steps_per_epoch() const;  // steps of a full epoch from cursor 0
  std::int64_t num_samples() const { return num_samples_; }
  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  std::int64_t batch_per_rank() const { return batch_per_rank_; }
  std::int64_t global_batch_size() const { return batch_per_rank_ * world_size_; }
  bool shuffle() const { return shuffle_; }
  LastBatch last_batch() const { return last_batch_; }
  std::uint64_t seed() const { return seed_; }

 private:
  std::int64_t num_samples_;
  std::int64_t batch_per_rank_;
  int rank_;
  int world_size_;
  std::uint64_t seed_;
  bool shuffle_;
  LastBatch last_batch_;
  std::int64_t epoch_ = 0;
  std::int64_t cursor_ = 0;
  std::vector<std::int64_t> order_;
};

}  // namespace dpt::data
