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
  Sampler sampler(10, 1, 0, 1, 0, true);
  EXPECT_THROW(sampler.set_epoch(0, 11), Error);
}

}  // namespace
}  // namespace dpt::data
