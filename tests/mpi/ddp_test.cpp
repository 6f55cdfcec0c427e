// Data-parallel training across real MPI ranks: identical parameters on every rank, equivalence with one rank
// on the combined batch, bit-identical continuation after a resume, ZeRO-1 (ddp.zero) against replicated state, and
// the non-finite guard naming the rank whose own gradients were not finite.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "distributed/local_backend.h"
#include "distributed/mpi_backend.h"
#include "data/tensor_source.h"
#include "mpi_test_env.h"
#include "trainer_config.h"
#include "train/losses.h"
#include "train/model_registry.h"
#include "train/train_options.h"
#include "train/trainer.h"

namespace dpt {
namespace {

using testing::flatten;
using testing::runtime;
using testing::scratch_dir;
using testing::trainer_config;

void expect_identical_on_every_rank(const std::vector<at::Tensor>& parameters, distributed::Backend& backend) {
  at::Tensor mine = flatten(parameters);
  at::Tensor all = at::empty({backend.world_size(), mine.numel()});
  backend.allgather(mine, all)->wait();
  for (int r = 0; r < backend.world_size(); ++r) {
    EXPECT_TRUE(at::equal(all[r], all[0])) << "rank " << r << " differs from rank 0";
  }
}

// Each of `a` within `relative` of `b` (the norm of the difference over b's), and moved from the initial
// parameters of the model `dataset` trains: a test that trains nothing would pass trivially.
void expect_close_and_trained(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double relative,
                              const std::string& dataset) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT((a[i] - b[i]).norm().item<double>() / b[i].norm().item<double>(), relative)
        << "parameter " << i << " of shape " << a[i].sizes();
  }
  distributed::LocalBackend untouched_backend;
  train::Trainer untouched(trainer_config(dataset, 32, 12), runtime(), untouched_backend);
  EXPECT_GT((flatten(a) - flatten(untouched.parameters())).abs().max().item<double>(), 1e-3);
}

TEST(DataParallel, EveryRankHoldsBitIdenticalParameters) {
  const std::string dataset = testing::make_dataset("train", 200);
  distributed::MpiBackend backend;
  train::Trainer trainer(trainer_config(dataset, 16, 9), runtime(), backend);
  trainer.fit();
  EXPECT_EQ(trainer.step(), 9);
  expect_identical_on_every_rank(trainer.parameters(), backend);
}

// N ranks x batch 32 (trained with `parallel_extra` settings) against one rank x batch N*32. 200 samples: with 2
// or 3 ranks x batch 32 the last global batch of each epoch is short and uneven.
void expect_parallel_matches_one_rank(const std::vector<std::string>& parallel_extra) {
  const std::string dataset = testing::make_dataset("train", 200);
  const int world = runtime().world_size();
  // 12 steps cross two epoch boundaries, each with a short, unevenly split final batch.
  distributed::MpiBackend mpi;
  train::Trainer parallel(trainer_config(dataset, 32, 12, parallel_extra), runtime(), mpi);
  parallel.fit();
  distributed::LocalBackend local;
  train::Trainer single(trainer_config(dataset, 32 * world, 12), runtime(), local);
  single.fit();

  expect_close_and_trained(parallel.parameters(), single.parameters(), 1e-5, dataset);
}

TEST(DataParallel, NRanksTimesBatchEqualsOneRankTimesNBatch) { expect_parallel_matches_one_rank({}); }

// Each rank's 32 samples as 4 micro-batches of 8 (one all-reduce per step), small buckets rebuilt after step 1.
TEST(DataParallel, AccumulatedMicroBatchesEqualOneRankTimesNBatch) {
  expect_parallel_matches_one_rank({"ddp.accumulate_steps=4", "ddp.bucket_cap_mb=0.5", "ddp.first_bucket_mb=0.01"});
}

TEST(DataParallel, ResumeContinuesBitIdentically) {
  const std::string dataset = testing::make_dataset("train", 200);
  const std::string store = scratch_dir() + "/ckpt-resume";
  const std::vector<std::string> with_checkpoints = {"checkpoint.enabled=true", "checkpoint.dir=" + store,
                                                     "checkpoint.every_steps=0"};
  distributed::MpiBackend backend;
  {
    train::Trainer first(trainer_config(dataset, 16, 5, with_checkpoints), runtime(), backend);
    first.fit();
  }
  backend.barrier()->wait();  // rank 0 has published the checkpoint
  train::Trainer resumed(trainer_config(dataset, 16, 11, with_checkpoints), runtime(), backend);
  resumed.fit("latest");
  train::Trainer straight(trainer_config(dataset, 16, 11), runtime(), backend);
  straight.fit();
  EXPECT_EQ(resumed.step(), 11);
  EXPECT_TRUE(at::equal(flatten(resumed.parameters()), flatten(straight.parameters())));
}

// ddp.zero = 1 against ddp.zero = 0 on the same ranks (each with `extra` settings): the same parameters to float
// rounding (the gradient norm's sums run in another order), identical on every rank, and 1/N of the optimizer
// state per rank. Clipping at 0.05 clips every step, so a norm taken over one rank's shard alone would show.
void expect_zero_matches_replicated(const std::vector<std::string>& extra) {
  const std::string dataset = testing::make_dataset("train", 200);
  distributed::MpiBackend mpi;
  std::vector<std::string> sharded_extra = extra;
  sharded_extra.push_back("ddp.zero=1");
  train::Trainer sharded(trainer_config(dataset, 32, 8, sharded_extra), runtime(), mpi);
  sharded.fit();
  train::Trainer replicated(trainer_config(dataset, 32, 8, extra), runtime(), mpi);
  replicated.fit();
  expect_close_and_trained(sharded.parameters(), replicated.parameters(), 1e-5, dataset);
  expect_identical_on_every_rank(sharded.parameters(), mpi);
  const double share = static_cast<double>(sharded.optimizer_state_bytes()) /
                       static_cast<double>(replicated.optimizer_state_bytes());
  EXPECT_GT(share, 0.0);
  EXPECT_LT(share, 1.0 / mpi.world_size() + 0.01) << sharded.optimizer_state_bytes() << " of "
                                                   << replicated.optimizer_state_bytes() << " bytes";
}

TEST(ZeroRedundancy, AdamWithClippingMatchesReplicatedState) {
  expect_zero_matches_replicated({"train.optimizer=adam", "train.grad_clip=0.05"});
}

TEST(ZeroRedundancy, SgdMomentumWithClippingMatchesReplicatedState) {
  expect_zero_matches_replicated({"train.optimizer=sgd", "train.momentum=0.9", "train.lr=0.05", "train.grad_clip=0.05"});
}

// 16-bit wire values, micro-batches and small buckets (several shards per rank, sizes not divisible by the ranks).
TEST(ZeroRedundancy, CompressedAccumulatedSmallBucketsMatchReplicatedState) {
  expect_zero_matches_replicated({"ddp.compression=bf16", "ddp.accumulate_steps=4", "ddp.bucket_cap_mb=0.5",
                                  "ddp.first_bucket_mb=0.01", "train.grad_clip=0.05"});
}

// A checkpoint holds the optimizer state whole whatever ddp.zero was: a zero = 1 save resumes with zero = 0 and a
// zero = 0 save with zero = 1, each continuing as a straight run does (SGD with momentum: the state matters).
TEST(ZeroRedundancy, CheckpointsResumeAcrossZeroSettings) {
  const std::string dataset = testing::make_dataset("train", 200);
  const std::vector<std::string> sgd = {"train.optimizer=sgd", "train.momentum=0.9", "train.lr=0.05"};
  distributed::MpiBackend backend;
  train::Trainer straight(trainer_config(dataset, 16, 11, sgd), runtime(), backend);
  straight.fit();
  for (const auto& [saved, resumed] : {std::pair<int, int>{1, 0}, {0, 1}}) {
    const std::string store = scratch_dir() + "/ckpt-zero-" + std::to_string(saved);
    std::vector<std::string> overrides = sgd;
    overrides.insert(overrides.end(), {"checkpoint.enabled=true", "checkpoint.dir=" + store, "checkpoint.every_steps=0"});
    std::vector<std::string> first_overrides = overrides;
    first_overrides.push_back("ddp.zero=" + std::to_string(saved));
    {
      train::Trainer first(trainer_config(dataset, 16, 5, first_overrides), runtime(), backend);
      first.fit();
    }
    backend.barrier()->wait();  // rank 0 has published the checkpoint
    overrides.push_back("ddp.zero=" + std::to_string(resumed));
    train::Trainer again(trainer_config(dataset, 16, 11, overrides), runtime(), backend);
    again.fit("latest");
    EXPECT_EQ(again.step(), 11);
    const auto a = again.parameters();
    const auto b = straight.parameters();
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-5)
          << "parameter " << i << ", saved with ddp.zero = " << saved << ", resumed with " << resumed;
    }
  }
}

// A program's own data and loss: regression (mse, float targets) and a language model ([B, T, V] logits against
// [B, T] token labels) train across the ranks from in-memory Sources, with the parameters equal on every rank.
struct ToyLanguageModelImpl : torch::nn::Module {
  ToyLanguageModelImpl() : embed(register_module("embed", torch::nn::Embedding(8, 16))),
                           head(register_module("head", torch::nn::Linear(16, 8))) {}
  // Inputs arrive as float32 (the loader normalises); token ids are small integers, exact in float32.
  torch::Tensor forward(torch::Tensor tokens) { return head->forward(embed->forward(tokens.to(torch::kLong))); }
  torch::nn::Embedding embed;
  torch::nn::Linear head;
};
TORCH_MODULE(ToyLanguageModel);

void expect_trains(train::Trainer& trainer, distributed::Backend& backend, double initial_loss) {
  const train::FitResult result = trainer.fit();
  ASSERT_TRUE(result.evaluated);
  EXPECT_LT(result.eval.loss, 0.5 * initial_loss);
  expect_identical_on_every_rank(trainer.parameters(), backend);
}

TEST(Trainer, ProgramsOwnSourcesAndLossesTrainARegressionAndALanguageModel) {
  testing::register_test_model<torch::nn::Linear>("linear_3_2", [] { return torch::nn::Linear(3, 2); });
  testing::register_test_model<ToyLanguageModel>("toy_lm", [] { return ToyLanguageModel(); });
  const std::vector<std::string> common = {"data.scale=1.0", "data.mean=0", "data.std=1", "train.epochs=30",
                                           "train.lr=0.05",
                                           "checkpoint.enabled=false", "tracking.sinks=[]",
                                           "ddp.shared_memory_mb=0"};
  distributed::MpiBackend backend;
  {
    torch::manual_seed(5);  // every rank builds the same data
    const at::Tensor x = torch::randn({96, 3});
    const at::Tensor y = torch::matmul(x, torch::tensor({{1.0f, -2.0f}, {0.5f, 1.0f}, {3.0f, 0.0f}})) + 0.25;
    auto source = std::make_shared<data::TensorSource>(x, y, "regression");
    std::vector<std::string> overrides = common;
    overrides.insert(overrides.end(), {"model.name=linear_3_2", "train.loss=mse"});
    train::Trainer trainer(trainer_config("unused.h5", 8, 0, overrides), runtime(), backend,
                           train::TrainerParts{source, source, train::losses().get("mse")});
    expect_trains(trainer, backend, y.pow(2).mean().item<double>());
  }
  {
    torch::manual_seed(6);
    // Next token = (token + 1) mod 8: learnable, and the labels are per position.
    const at::Tensor tokens = torch::randint(0, 8, {64, 5}, at::kLong);
    const at::Tensor next = (tokens + 1).remainder(8);
    auto source = std::make_shared<data::TensorSource>(tokens.to(at::kFloat), next, "tokens");
    std::vector<std::string> overrides = common;
    overrides.insert(overrides.end(), {"model.name=toy_lm", "train.loss=cross_entropy"});
    train::Trainer trainer(trainer_config("unused.h5", 8, 0, overrides), runtime(), backend,
                           train::TrainerParts{source, source, std::nullopt});
    expect_trains(trainer, backend, std::log(8.0));
    EXPECT_GT(trainer.evaluate().accuracy, 0.9);
  }
}

// The identity forward; a backward that replaces the whole incoming gradient with `value` (a numerically unstable
// layer: the loss stays finite, its gradients do not).
struct PoisonBackward : torch::autograd::Function<PoisonBackward> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double value) {
    ctx->saved_data["value"] = value;
    return x.clone();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {at::full_like(grads[0], ctx->saved_data["value"].toDouble()), at::Tensor()};
  }
};

// Where PoisonedLinear poisons: one rank, at one training step, with one value.
struct Poison {
  int rank = -1;
  std::int64_t step = 0;
  double value = 0.0;
};
Poison poison;

// Linear(3, 2) whose backward on rank poison.rank at training forward poison.step is PoisonBackward's.
struct PoisonedLinearImpl : torch::nn::Module {
  PoisonedLinearImpl() : linear(register_module("linear", torch::nn::Linear(3, 2))) {}
  torch::Tensor forward(torch::Tensor x) {
    at::Tensor y = linear->forward(x);
    if (is_training() && ++calls == poison.step && runtime().rank() == poison.rank) {
      y = PoisonBackward::apply(y, poison.value);
    }
    return y;
  }
  torch::nn::Linear linear;
  std::int64_t calls = 0;
};
TORCH_MODULE(PoisonedLinear);

// The message every rank gets from fit() (empty: it finished), and the parameters it left.
std::string fit_error(train::Trainer& trainer) {
  try {
    trainer.fit();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

// A gradient that is not finite on one rank only, with every loss finite: the agreed error names the step, the
// parameter and the rank it came from; "skip" skips it and finishes with the same parameters everywhere. An fp16
// wire that overflows, with every rank's own gradients finite, says so instead of blaming a rank.
TEST(Trainer, NonFiniteGradientsOfOneRankNameThatRank) {
  testing::register_test_model<PoisonedLinear>("poisoned_linear", [] { return PoisonedLinear(); });
  distributed::MpiBackend backend;
  const int last = backend.world_size() - 1;
  torch::manual_seed(5);
  const at::Tensor x = torch::randn({96, 3});
  const at::Tensor y = torch::matmul(x, torch::tensor({{1.0f, -2.0f}, {0.5f, 1.0f}, {3.0f, 0.0f}}));
  auto source = std::make_shared<data::TensorSource>(x, y, "regression");
  const auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> overrides = {"data.scale=1.0", "data.mean=0", "data.std=1", "model.name=poisoned_linear",
                                          "train.loss=mse", "ddp.shared_memory_mb=0"};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return std::make_unique<train::Trainer>(trainer_config("unused.h5", 8, 5, overrides), runtime(), backend,
                                            train::TrainerParts{source, source, train::losses().get("mse")});
  };
  poison = {last, 3, std::numeric_limits<double>::quiet_NaN()};
  {
    auto trainer = run({});
    const std::string message = fit_error(*trainer);
    EXPECT_NE(message.find("step 3: the gradient of parameter 'linear.weight' holds 6 non-finite value(s) after the "
                           "all-reduce; rank(s) " + std::to_string(last) + " brought them"),
              std::string::npos)
        << message;
    EXPECT_EQ(trainer->step(), 2) << "the non-finite step is not taken";
  }
  {
    auto trainer = run({"train.nonfinite=skip"});
    EXPECT_EQ(fit_error(*trainer), "");
    EXPECT_EQ(trainer->step(), 5);
    EXPECT_TRUE(at::isfinite(flatten(trainer->parameters())).all().item<bool>());
    expect_identical_on_every_rank(trainer->parameters(), backend);
  }
  poison = {last, 3, 1e6};  // finite in float32; times the rank's share, beyond float16's 65504
  {
    auto trainer = run({"ddp.compression=fp16"});
    const std::string message = fit_error(*trainer);
    EXPECT_NE(message.find("step 3: the gradient of parameter 'linear.weight' holds"), std::string::npos) << message;
    EXPECT_NE(message.find("every rank's loss and own gradients were finite, so the reduction overflowed "
                           "(ddp.compression = \"fp16\""),
              std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace dpt
