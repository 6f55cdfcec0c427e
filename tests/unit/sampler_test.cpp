// Sampler: every sample once per epoch across ranks, deterministic orders, exact resume, DDP batch equivalence.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"

namespace dpt::data {
namespace {

// Steps from the sampler's current position to the end of the epoch, for every rank: result[step][rank].
std::vector<std::vector<StepSamples>> run_epoch(std::int64_t n, std::int64_t batch, int world, LastBatch last,
                                                std::int64_t epoch = 0, std::int64_t cursor = 0) {
  std::vector<Sampler> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back(n, batch, r, world, 42, true, last);
    ranks.back().set_epoch(epoch, cursor);
  }
  std::vector<std::vector<StepSamples>> steps;
  while (ranks[0].has_next()) {
    steps.emplace_back();
    for (auto& sampler : ranks) {
      EXPECT_TRUE(sampler.has_next());
      steps.back().push_back(sampler.next());
    }
  }
  for (const auto& sampler : ranks) EXPECT_FALSE(sampler.has_next());
  return steps;
}

// All samples of the given steps in global order (rank 0's share, then rank 1's, ...).
std::vector<std::int64_t> flatten(const std::vector<std::vector<StepSamples>>& steps) {
  std::vector<std::int64_t> all;
  for (const auto& step : steps) {
    for (const auto& share : step) all.insert(all.end(), share.indices.begin(), share.indices.end());
  }
  return all;
}

TEST(EpochOrder, IsAPermutationThatDependsOnSeedAndEpochOnly) {
  const auto order = epoch_order(7, 3, 1000, true);
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(order, identity);
  EXPECT_EQ(order, epoch_order(7, 3, 1000, true));
  EXPECT_NE(order, epoch_order(7, 4, 1000, true));
  EXPECT_NE(order, epoch_order(8, 3, 1000, true));
  EXPECT_EQ(epoch_order(7, 3, 1000, false), identity);
}

TEST(EpochOrder, IsPinnedAcrossPlatformsAndVersions) {
  // A changed PRNG would silently change the data order of every resumed run; these values pin the algorithm.
  EXPECT_EQ(epoch_order(1234, 5, 10, true), (std::vector<std::int64_t>{2, 4, 5, 0, 7, 8, 9, 6, 3, 1}));
  EXPECT_EQ(epoch_order(0, 0, 10, true), (std::vector<std::int64_t>{6, 3, 2, 9, 8, 1, 4, 7, 0, 5}));
}

TEST(Sampler, EverySampleExactlyOncePerEpochAcrossRanks) {
  const auto steps = run_epoch(103, 4, 3, LastBatch::Uneven);
  EXPECT_EQ(steps.size(), 9u);  // ceil(103 / 12)
  auto all = flatten(steps);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(103);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  // The final short global batch (103 - 96 = 7) is split 2/2/3.
  const auto& last = steps.back();
  EXPECT_EQ(last[0].global_batch, 7);
  EXPECT_EQ(last[0].indices.size() + last[1].indices.size() + last[2].indices.size(), 7u);
  for (const auto& share : last) EXPECT_GE(share.indices.size(), 2u);
  EXPECT_EQ(last[0].cursor_after, 103);
}

TEST(Sampler, DropLastYieldsExactlyTheFullGlobalBatches) {
  const auto steps = run_epoch(103, 4, 3, LastBatch::DropLast);
  EXPECT_EQ(steps.size(), 8u);
  for (const auto& step : steps) {
    for (const auto& share : step) {
      EXPECT_EQ(share.indices.size(), 4u);
      EXPECT_EQ(share.global_batch, 12);
    }
  }
  auto all = flatten(steps);
  EXPECT_EQ(all.size(), 96u);
  EXPECT_EQ(std::set<std::int64_t>(all.begin(), all.end()).size(), 96u);
  const auto order = epoch_order(42, 0, 103, true);
  EXPECT_EQ(all, std::vector<std::int64_t>(order.begin(), order.begin() + 96));
  Sampler sampler(103, 4, 0, 3, 42, true, LastBatch::DropLast);
  EXPECT_EQ(sampler.steps_per_epoch(), 8);
}

TEST(Sampler, PadGivesEveryRankAFullBatchAndRepeatsOnlyTheEpochsFirstSamples) {
  const auto steps = run_epoch(103, 4, 3, LastBatch::Pad);
  ASSERT_EQ(steps.size(), 9u);
  for (const auto& step : steps) {
    for (const auto& share : step) {
      EXPECT_EQ(share.indices.size(), 4u);
      EXPECT_EQ(share.global_batch, 12);
    }
  }
  EXPECT_EQ(steps.back()[0].cursor_after, 103);
  // Every sample once, then the 108 - 103 = 5 padding samples: the first 5 of the epoch's order, in order.
  const auto order = epoch_order(42, 0, 103, true);
  auto expected = order;
  expected.insert(expected.end(), order.begin(), order.begin() + 5);
  EXPECT_EQ(flatten(steps), expected);
  // Fewer samples than one global batch: the padding wraps around the order as often as needed.
  const auto tiny = flatten(run_epoch(5, 4, 3, LastBatch::Pad));
  ASSERT_EQ(tiny.size(), 12u);
  const auto tiny_order = epoch_order(42, 0, 5, true);
  for (std::size_t i = 0; i < tiny.size(); ++i) EXPECT_EQ(tiny[i], tiny_order[i % 5]) << "position " << i;
  EXPECT_EQ(Sampler(103, 4, 0, 3, 42, true, LastBatch::Pad).steps_per_epoch(), 9);
}

TEST(Sampler, PadResumeAtAnotherWorldSizeCoversTheRestExactlyOnce) {
  // 3 ranks x 4 stop at cursor 60; 2 ranks x 8 finish: 43 left = 2 full steps of 16 and a padded one of 11 + 5.
  const auto first = run_epoch(103, 4, 3, LastBatch::Pad, 1);
  std::vector<std::vector<StepSamples>> head(first.begin(), first.begin() + 5);
  auto all = flatten(head);
  const auto tail = run_epoch(103, 8, 2, LastBatch::Pad, 1, 60);
  ASSERT_EQ(tail.size(), 3u);
  const auto rest = flatten(tail);
  all.insert(all.end(), rest.begin(), rest.end());
  const auto order = epoch_order(42, 1, 103, true);
  auto expected = order;
  expected.insert(expected.end(), order.begin(), order.begin() + 5);
  EXPECT_EQ(all, expected);
}

TEST(Sampler, LastBatchModesParseFromTheConfigValue) {
  EXPECT_EQ(parse_last_batch("uneven"), LastBatch::Uneven);
  EXPECT_EQ(parse_last_batch("drop_last"), LastBatch::DropLast);
  EXPECT_EQ(parse_last_batch("pad"), LastBatch::Pad);
  try {
    parse_last_batch("drop");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("data.last_batch = \"drop\""), std::string::npos) << e.message();
  }
}

TEST(Sampler, RankSharesAreDisjoint) {
  for (const auto& step : run_epoch(103, 4, 3, LastBatch::Uneven)) {
    std::set<std::int64_t> seen;
    for (const auto& share : step) {
      for (auto index : share.indices) EXPECT_TRUE(seen.insert(index).second) << "index " << index << " twice";
    }
  }
}

TEST(Sampler, OrderDiffersBetweenEpochsAndRepeatsForTheSameSeed) {
  const auto epoch = [](std::int64_t e) { return flatten(run_epoch(103, 4, 3, LastBatch::Uneven, e)); };
  EXPECT_NE(epoch(0), epoch(1));
  EXPECT_EQ(epoch(1), epoch(1));
  Sampler a(50, 5, 0, 1, 1, true);
  Sampler b(50, 5, 0, 1, 2, true);
  EXPECT_NE(a.next().indices, b.next().indices);
}

TEST(Sampler, ResumeFromCursorYieldsExactlyTheRemainingSequence) {
  const auto full = flatten(run_epoch(103, 4, 3, LastBatch::Uneven, 2));
  for (std::int64_t cursor : {0, 12, 36, 96, 100, 103}) {
    const auto rest = flatten(run_epoch(103, 4, 3, LastBatch::Uneven, 2, cursor));
    EXPECT_EQ(rest, std::vector<std::int64_t>(full.begin() + cursor, full.end())) << "cursor " << cursor;
  }
}

TEST(Sampler, ResumeAtAnotherWorldSizeCoversTheRestExactlyOnce) {
  // 3 ranks x 4 run 5 steps (cursor 60), then 2 ranks x 5 finish the epoch.
  const auto first = run_epoch(103, 4, 3, LastBatch::Uneven, 1);
  std::vector<std::vector<StepSamples>> head(first.begin(), first.begin() + 5);
  const std::int64_t cursor = head.back()[0].cursor_after;
  EXPECT_EQ(cursor, 60);
  auto all = flatten(head);
  const auto tail = flatten(run_epoch(103, 5, 2, LastBatch::Uneven, 1, cursor));
  all.insert(all.end(), tail.begin(), tail.end());
  EXPECT_EQ(all, epoch_order(42, 1, 103, true));
}

TEST(Sampler, WorldRanksTimesBatchEqualsOneRankTimesWorldBatch) {
  const auto many = run_epoch(103, 4, 3, LastBatch::Uneven);
  const auto one = run_epoch(103, 12, 1, LastBatch::Uneven);
  ASSERT_EQ(many.size(), one.size());
  for (std::size_t s = 0; s < many.size(); ++s) {
    std::vector<std::int64_t> joined;
    for (const auto& share : many[s]) joined.insert(joined.end(), share.indices.begin(), share.indices.end());
    EXPECT_EQ(joined, one[s][0].indices) << "step " << s;
    EXPECT_EQ(many[s][0].global_batch, one[s][0].global_batch);
    EXPECT_EQ(many[s][0].cursor_after, one[s][0].cursor_after);
  }
}

// One optimizer step of every rank: each rank's loader batches of the step, in order.
using Step = std::vector<std::vector<StepSamples>>;

// The optimizer steps from `cursor` to the end of the epoch with `per_step` loader batches per step.
std::vector<Step> run_steps(std::int64_t n, std::int64_t batch, int world, LastBatch last, std::int64_t per_step,
                            std::int64_t epoch = 0, std::int64_t cursor = 0) {
  std::vector<Sampler> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back(n, batch, r, world, 42, true, last, per_step);
    ranks.back().set_epoch(epoch, cursor);
  }
  std::vector<Step> steps;
  while (ranks[0].has_next()) {
    Step step(static_cast<std::size_t>(world));
    for (int r = 0; r < world; ++r) {
      do {
        EXPECT_TRUE(ranks[r].has_next());
        step[r].push_back(ranks[r].next());
      } while (!step[r].back().ends_step);
    }
    steps.push_back(std::move(step));
  }
  for (const auto& sampler : ranks) EXPECT_FALSE(sampler.has_next());
  return steps;
}

// A step's samples across ranks, sorted: what its gradient is the mean over.
std::vector<std::int64_t> samples_of(const Step& step) {
  std::vector<std::int64_t> all;
  for (const auto& batches : step) {
    for (const auto& batch : batches) all.insert(all.end(), batch.indices.begin(), batch.indices.end());
  }
  std::sort(all.begin(), all.end());
  return all;
}

TEST(Sampler, StepOfKBatchesHoldsTheSamplesOfOneBatchKTimesAsLarge) {
  for (LastBatch last : {LastBatch::Uneven, LastBatch::DropLast, LastBatch::Pad}) {
    for (int world : {1, 2, 3}) {
      const auto gathered = run_steps(103, 4, world, last, 3);
      const auto one = run_steps(103, 12, world, last, 1);
      ASSERT_EQ(gathered.size(), one.size()) << "mode " << static_cast<int>(last) << ", " << world << " ranks";
      EXPECT_EQ(Sampler(103, 4, 0, world, 42, true, last, 3).steps_per_epoch(), static_cast<std::int64_t>(one.size()));
      for (std::size_t s = 0; s < one.size(); ++s) {
        const std::string where = "step " + std::to_string(s) + ", mode " + std::to_string(static_cast<int>(last)) +
                                  ", " + std::to_string(world) + " ranks";
        EXPECT_EQ(samples_of(gathered[s]), samples_of(one[s])) << where;
        std::int64_t global = 0;
        for (int r = 0; r < world; ++r) {
          std::int64_t local = 0;
          for (const auto& batch : gathered[s][r]) {
            local += static_cast<std::int64_t>(batch.indices.size());
            EXPECT_EQ(batch.step_global, one[s][0][0].global_batch) << where;
          }
          EXPECT_LE(gathered[s][r].size(), 3u) << where;
          EXPECT_EQ(gathered[s][r].front().step_local, local) << where;
          EXPECT_EQ(gathered[s][r].back().cursor_after, one[s][0][0].cursor_after) << where;
          global += local;
        }
        EXPECT_EQ(global, one[s][0][0].global_batch) << where;
      }
    }
  }
}

TEST(Sampler, LastStepOfAnEpochIsShortUnevenAndPaddedOrDropped) {
  // 103 samples, 2 ranks x 4 x 3 batches = 24 a step: 4 full steps, then 7 samples in one short batch.
  const auto uneven = run_steps(103, 4, 2, LastBatch::Uneven, 3);
  ASSERT_EQ(uneven.size(), 5u);
  EXPECT_EQ(uneven.back()[0].size(), 1u);
  EXPECT_EQ(uneven.back()[0][0].step_global, 7);
  EXPECT_EQ(uneven.back()[0][0].step_local + uneven.back()[1][0].step_local, 7);
  EXPECT_EQ(run_steps(103, 4, 2, LastBatch::DropLast, 3).size(), 4u);
  // Pad: the short step is topped up to 3 full batches from the epoch's start: 7 + 17 samples.
  const auto padded = run_steps(103, 4, 2, LastBatch::Pad, 3);
  ASSERT_EQ(padded.size(), 5u);
  EXPECT_EQ(padded.back()[0].size(), 3u);
  const auto order = epoch_order(42, 0, 103, true);
  std::vector<std::int64_t> expected(order.begin() + 96, order.end());
  expected.insert(expected.end(), order.begin(), order.begin() + 17);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(samples_of(padded.back()), expected);
}

TEST(Sampler, ResumeWithOtherRanksAndBatchesPerStepCoversTheRestExactlyOnce) {
  // 3 ranks x 4 x 2 batches run 3 steps (cursor 72), then 2 ranks x 5 x 3 batches finish the epoch.
  const auto first = run_steps(103, 4, 3, LastBatch::Uneven, 2, 1);
  const std::int64_t cursor = first[2][0].back().cursor_after;
  EXPECT_EQ(cursor, 72);
  std::vector<std::int64_t> all;
  const auto append = [&all](const std::vector<Step>& steps, std::size_t count) {
    for (std::size_t s = 0; s < count; ++s) {
      // Within a step the batches follow the order; ranks take consecutive slices of each batch.
      const std::size_t batches = steps[s][0].size();
      for (std::size_t b = 0; b < batches; ++b) {
        for (const auto& rank : steps[s]) all.insert(all.end(), rank[b].indices.begin(), rank[b].indices.end());
      }
    }
  };
  append(first, 3);
  const auto rest = run_steps(103, 5, 2, LastBatch::Uneven, 3, 1, cursor);
  append(rest, rest.size());
  EXPECT_EQ(all, epoch_order(42, 1, 103, true));
}

TEST(Sampler, PositionAfterStepsMatchesTheStepsTaken) {
  for (LastBatch last : {LastBatch::Uneven, LastBatch::DropLast, LastBatch::Pad}) {
    Sampler sampler(103, 4, 0, 2, 42, true, last, 3);
    for (std::int64_t cursor : {0, 24, 48, 96}) {
      // Walk 12 steps (several epochs) from `cursor`, counting an epoch's end as its 103 samples.
      std::int64_t epoch = 0;
      sampler.set_epoch(0, cursor);
      for (std::int64_t steps = 0; steps <= 12; ++steps) {
        const std::int64_t position = epoch * 103 + (sampler.has_next() ? sampler.cursor() : 103);
        EXPECT_EQ(sampler.position_after(cursor, steps), position)
            << "mode " << static_cast<int>(last) << ", cursor " << cursor << ", " << steps << " steps";
        if (!sampler.has_next()) sampler.set_epoch(++epoch, 0);
        do {
          ASSERT_TRUE(sampler.has_next());
        } while (!sampler.next().ends_step);
      }
    }
  }
}

TEST(Sampler, ShortFinalBatchMayLeaveARankEmpty) {
  // 10 samples, 4 ranks x 2: the second step has 2 samples for 4 ranks.
  const auto steps = run_epoch(10, 2, 4, LastBatch::Uneven);
  ASSERT_EQ(steps.size(), 2u);
  std::size_t total = 0;
  for (const auto& share : steps[1]) total += share.indices.size();
  EXPECT_EQ(total, 2u);
  EXPECT_TRUE(steps[1][0].indices.empty());
}

TEST(Sampler, NoShuffleIsTheIdentity) {
  Sampler sampler(10, 3, 1, 2, 9, false);
  EXPECT_EQ(sampler.next().indices, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(sampler.next().indices, (std::vector<std::int64_t>{8, 9}));
  EXPECT_FALSE(sampler.has_next());
  EXPECT_EQ(sampler.steps_per_epoch(), 2);
}

TEST(Sampler, RejectsImpossibleConfigurations) {
  try {
    Sampler(5, 1, 0, 8, 0, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("5 samples cannot be shared by 8 ranks"), std::string::npos) << e.message();
  }
  EXPECT_THROW(Sampler(0, 1, 0, 1, 0, true), Error);
  EXPECT_THROW(Sampler(10, 0, 0, 1, 0, true), Error);
  EXPECT_THROW(Sampler(10, 1, 2, 2, 0, true), Error);
  EXPECT_THROW(Sampler(10, 4, 0, 3, 0, true, LastBatch::DropLast), Error);  // no full batch to keep
  try {
    Sampler(10, 1, 0, 2, 0, true, LastBatch::DropLast, 6);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("a step of 12 (2 ranks x 1 x 6 batches) leaves no full step"), std::string::npos)
        << e.message();
  }
  Sampler sampler(10, 1, 0, 1, 0, true);
  EXPECT_THROW(sampler.set_epoch(0, 11), Error);
}

}  // namespace
}  // namespace dpt::data
