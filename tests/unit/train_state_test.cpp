// TrainState: each step's generator seed is a function of (run seed, rank, position) only; a checkpoint round trip
// keeps where the run stood, also from a version written with generator states.
#include "train/train_state.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "train/optimizer_state.h"

namespace dpt::train {
namespace {

TEST(StepSeed, DependsOnRunSeedRankAndPositionAlone) {
  EXPECT_EQ(step_seed(8, 1, 480), step_seed(8, 1, 480));
  std::set<std::uint64_t> seeds;
  for (std::uint64_t seed : {0, 8}) {
    for (int rank : {0, 1, 2}) {
      for (std::int64_t position : {0, 1, 48, 480}) seeds.insert(step_seed(seed, rank, position));
    }
  }
  EXPECT_EQ(seeds.size(), 24u) << "two (seed, rank, position) triples share a seed";
}

// What a step draws (dropout masks) after the seeding is the same whatever the generator did before it.
TEST(StepSeed, SeedsTheDefaultGeneratorTheSameWhateverCameBefore) {
  seed_step_generators(8, 2, 480, at::kCPU);
  const at::Tensor first = torch::rand({16});
  torch::rand({1000});  // a different history
  seed_step_generators(8, 2, 480, at::kCPU);
  EXPECT_TRUE(at::equal(torch::rand({16}), first));
  seed_step_generators(8, 3, 480, at::kCPU);
  EXPECT_FALSE(at::equal(torch::rand({16}), first)) << "rank 3 drew rank 2's numbers";
}

// A resume continues with the step, position, fp16 loss scale and growth count, and skipped steps of the save; a
// version with generator states (which dptrain wrote before steps seeded their own) loads the same.
TEST(Restore, ReturnsTheSavedStateAndIgnoresOlderVersionsGeneratorStates) {
  torch::nn::Linear layer(2, 2);
  torch::optim::SGD sgd(layer->parameters(), torch::optim::SGDOptions(0.1));
  const NamedTensorRefs model = {{"weight", layer->weight}, {"bias", layer->bias}};
  TrainState state;
  state.step = 5;
  state.epoch = 1;
  state.cursor = 48;
  state.skipped_steps = 2;
  state.loss_scale.value = 1024.0;
  state.loss_scale.good_steps = 17;
  checkpoint::CheckpointContents contents =
      snapshot(state, model, optimizer_state_tensors(sgd), nlohmann::json::object(), true);
  EXPECT_EQ(contents.tensors.count("rng"), 0u);
  for (bool with_generators : {false, true}) {
    if (with_generators) contents.tensors["rng"] = {{"rank0", at::zeros({5056}, at::kByte)}};
    const TrainState back = restore(
        contents, model, [&](const checkpoint::NamedTensors& t) { load_optimizer_state(sgd, t, "v1"); }, "v1", "linear");
    EXPECT_EQ(back.loss_scale.value, 1024.0);
    EXPECT_EQ(back.loss_scale.good_steps, 17);
    EXPECT_EQ(back.skipped_steps, 2);
    EXPECT_EQ(back.step, 5);
    EXPECT_EQ(back.position(100), 148);
  }
}

}  // namespace
}  // namespace dpt::train
