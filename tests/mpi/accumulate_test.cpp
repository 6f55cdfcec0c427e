// train.accumulate_batches across real ranks: K loader batches of b per optimizer step train as one batch of K*b
// (SGD and Adam, across epoch ends with a short last step), and a resume with K > 1 continues bit-identically.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "distributed/mpi_backend.h"
#include "mpi_test_env.h"
#include "train/trainer.h"
#include "trainer_config.h"

namespace dpt::testing {
namespace {

std::vector<std::string> with(std::vector<std::string> settings, const std::vector<std::string>& more) {
  settings.insert(settings.end(), more.begin(), more.end());
  return settings;
}

// 8 steps of 3 batches of 16 per rank against 8 steps of one batch of 48, both with `extra`, on `samples` samples:
// the largest relative difference over the parameters. 200 samples: at np 1 (48 a step) and np 2 (96 a step) each
// epoch ends with a short step of 8 samples, one short batch (split over the ranks at np 2), and 8 steps cross one
// or two epoch ends.
double three_batches_against_one(const std::vector<std::string>& extra, int samples = 200) {
  const std::string dataset = make_dataset("train" + std::to_string(samples), samples);
  distributed::MpiBackend backend;
  train::Trainer gathered(trainer_config(dataset, 16, 8, with({"train.accumulate_batches=3"}, extra)), runtime(),
                          backend);
  EXPECT_EQ(gathered.fit().steps, 8);
  train::Trainer one(trainer_config(dataset, 48, 8, extra), runtime(), backend);
  one.fit();
  // The parameters moved: a test that trains nothing would pass trivially.
  train::Trainer untouched(trainer_config(dataset, 48, 8, extra), runtime(), backend);
  EXPECT_GT((flatten(one.parameters()) - flatten(untouched.parameters())).abs().max().item<double>(), 1e-3);
  const auto a = gathered.parameters();
  const auto b = one.parameters();
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i] - b[i]).norm().item<double>() / b[i].norm().item<double>());
  }
  std::cout << "largest relative difference of a parameter: " << worst << std::endl;
  return worst;
}

TEST(AccumulateBatches, ThreeBatchesEqualOneBatchThreeTimesAsLargeWithSgd) {
  EXPECT_LT(three_batches_against_one({"train.optimizer=sgd", "train.lr=0.05"}), 1e-6);
}

TEST(AccumulateBatches, ThreeBatchesEqualOneBatchThreeTimesAsLargeWithAdam) {
  EXPECT_LT(three_batches_against_one({"train.optimizer=adam"}), 1e-6);
}

// Both kinds at once: each loader batch split into 2 micro-batches, 3 batches gathered into a step. The first
// convolution's gradient over micro-batches of 8 rounds differently from one over 24 (its bias: 1.7e-6 at np 1,
// every other parameter below 1e-6), hence the wider bound.
TEST(AccumulateBatches, GatheredBatchesSplitIntoMicroBatchesEqualOneBatch) {
  EXPECT_LT(three_batches_against_one({"train.optimizer=sgd", "train.lr=0.05", "ddp.accumulate_steps=2"}), 5e-6);
}

// ddp.zero = 1: the gradients of the step's batches add up before the last one's reduce-scatter.
TEST(AccumulateBatches, ThreeBatchesEqualOneBatchWithShardedOptimizerState) {
  EXPECT_LT(three_batches_against_one({"train.optimizer=adam", "ddp.zero=1"}), 1e-6);
}

// 129 samples at np 2: the epoch's second step is a batch of 32 and one of a single sample, so rank 0 has nothing in
// the step's last batch and sends what its first batch added up.
TEST(AccumulateBatches, ARankWithoutSamplesInTheLastBatchSendsItsEarlierBatches) {
  EXPECT_LT(three_batches_against_one({"train.optimizer=sgd", "train.lr=0.05"}, 129), 1e-6);
}

// Saved after step 4 (mid-epoch at np 1 and np 2), resumed to step 9: the same bits as 9 steps straight. Dropout
// draws from the generators, which every step seeds from where training stands, so no generator state is saved.
TEST(AccumulateBatches, ResumeContinuesBitIdentically) {
  const std::string dataset = make_dataset("train200", 200);
  const std::vector<std::string> settings = {"train.accumulate_batches=3", "model.options.dropout=0.3"};
  const std::vector<std::string> checkpoints = {"checkpoint.enabled=true",
                                                "checkpoint.dir=" + scratch_dir() + "/ckpt-accumulate",
                                                "checkpoint.every_steps=0"};
  distributed::MpiBackend backend;
  {
    train::Trainer first(trainer_config(dataset, 16, 4, with(settings, checkpoints)), runtime(), backend);
    first.fit();
  }
  backend.barrier()->wait();  // rank 0 has published the checkpoint
  train::Trainer resumed(trainer_config(dataset, 16, 9, with(settings, checkpoints)), runtime(), backend);
  resumed.fit("latest");
  train::Trainer straight(trainer_config(dataset, 16, 9, settings), runtime(), backend);
  straight.fit();
  EXPECT_EQ(resumed.step(), 9);
  EXPECT_TRUE(at::equal(flatten(resumed.parameters()), flatten(straight.parameters())));
}

}  // namespace
}  // namespace dpt::testing
