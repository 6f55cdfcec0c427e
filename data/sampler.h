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

// One loader batch: this rank's share of one of the `batches_per_step` batches of an optimizer step.
struct StepSamples {
  std::vector<std::int64_t> indices;  // this rank's sample indices for this batch, in sampler order
  std::int64_t global_batch;          // samples in this batch across all ranks
  std::int64_t cursor_after;          // global cursor after this batch
  std::int64_t step_global = 0;       // samples of the whole optimizer step (all its batches) across all ranks
  std::int64_t step_local = 0;        // this rank's samples over all the batches of the optimizer step
  bool ends_step = true;              // the last batch of its optimizer step
};

// An optimizer step at global cursor c takes positions [c, c + S) of the epoch's order with S = K * W * batch
// (K = batches_per_step, W ranks), cut to N - c at the end of the epoch; with DropLast a step shorter than S ends
// the epoch instead, with Pad it is topped up to S from order[0, ...). Its positions are cut into K loader batches
// of G = W * batch (the last one of an epoch may be shorter, or there may be fewer than K), and rank r takes
// positions [p + floor(g*r/W), p + floor(g*(r+1)/W)) of the batch of g samples at p. So W ranks x batch b x K
// batches see the samples of 1 rank x batch K*W*b, and a resume from the same cursor at another world size, batch
// or K neither skips nor repeats.
class Sampler {
 public:
  Sampler(std::int64_t num_samples, std::int64_t batch_per_rank, int rank, int world_size, std::uint64_t seed,
          bool shuffle, LastBatch last_batch = LastBatch::Uneven, std::int64_t batches_per_step = 1);

  // cursor = global samples of this epoch already consumed (as saved in a checkpoint): the start of a step.
  void set_epoch(std::int64_t epoch, std::int64_t cursor = 0);
  bool has_next() const;
  StepSamples next();

  std::int64_t epoch() const { return epoch_; }
  std::int64_t cursor() const { return cursor_; }
  std::int64_t steps_per_epoch() const;  // optimizer steps of a full epoch from cursor 0
  std::int64_t steps_from(std::int64_t cursor) const;  // optimizer steps left in an epoch at `cursor`
  // Samples of the epoch's order from its start (epochs x num_samples + cursor: what schedules count) after
  // `steps` more optimizer steps from `cursor`; an epoch's last step ends at num_samples, also under DropLast.
  std::int64_t position_after(std::int64_t cursor, std::int64_t steps) const;
  std::int64_t num_samples() const { return num_samples_; }
  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  std::int64_t batch_per_rank() const { return batch_per_rank_; }
  std::int64_t global_batch_size() const { return batch_per_rank_ * world_size_; }  // samples of one batch
  std::int64_t batches_per_step() const { return batches_per_step_; }
  std::int64_t samples_per_step() const { return global_batch_size() * batches_per_step_; }
  bool shuffle() const { return shuffle_; }
  LastBatch last_batch() const { return last_batch_; }
  std::uint64_t seed() const { return seed_; }

 private:
  std::int64_t step_size_at(std::int64_t start) const;  // global samples of the step that begins at `start`

  std::int64_t num_samples_;
  std::int64_t batch_per_rank_;
  int rank_;
  int world_size_;
  std::uint64_t seed_;
  bool shuffle_;
  LastBatch last_batch_;
  std::int64_t batches_per_step_;
  std::int64_t epoch_ = 0;
  std::int64_t cursor_ = 0;
  std::int64_t step_start_ = 0;     // the cursor where the current optimizer step began
  std::int64_t batch_in_step_ = 0;  // batches of the current step already taken
  std::vector<std::int64_t> order_;
};

}  // namespace dpt::data
