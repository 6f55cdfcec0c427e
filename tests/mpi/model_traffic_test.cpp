// The two roles of collectives: a Trainer at np >= 2 whose gradient backend refuses every tensor that is not the
// model's goes through training, evaluation, checkpoints, resume, the preemption vote, unused parameters,
// compressed buckets and the bucket rebuild, because control traffic takes the control backend.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/config.h"
#include "distributed/mpi_backend.h"
#include "model_traffic_backend.h"
#include "mpi_test_env.h"
#include "trainer_config.h"
#include "train/model_registry.h"
#include "train/train_options.h"
#include "train/trainer.h"

namespace dpt {
namespace {

using testing::runtime;
using testing::scratch_dir;

// A classifier with a layer that forward never uses: its gradient is missing on every step.
struct PartlyUsedImpl : torch::nn::Module {
  PartlyUsedImpl()
      : head(register_module("head", torch::nn::Linear(28 * 28, 10))),
        idle(register_module("idle", torch::nn::Linear(4, 4))) {}
  torch::Tensor forward(torch::Tensor x) { return head->forward(x.flatten(1)); }
  torch::nn::Linear head;
  torch::nn::Linear idle;
};
TORCH_MODULE(PartlyUsed);

Config traffic_config(const std::string& name, std::vector<std::string> extra) {
  std::vector<std::string> overrides = {
      "data.train=" + testing::make_dataset("train", 200),
      "data.test=" + testing::make_dataset("test", 60),
      "train.batch_size=16",
      "train.epochs=2",
      "run.output_dir=" + scratch_dir() + "/runs-" + name + "-" + std::to_string(runtime().rank()),
      "checkpoint.dir=" + scratch_dir() + "/ckpt-" + name,
      "checkpoint.every_steps=3",
      "tracking.sinks=[]",
      "ddp.bucket_cap_mb=0.05",
      "ddp.first_bucket_mb=0.01",
  };
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return Config::parse(train::config_schema(), "", overrides, "test");
}

struct CheckedTrainer {
  std::shared_ptr<distributed::MpiBackend> control = std::make_shared<distributed::MpiBackend>();
  std::shared_ptr<testing::ModelTrafficBackend> gradients =
      std::make_shared<testing::ModelTrafficBackend>(*control, at::kCPU);
  std::unique_ptr<train::Trainer> trainer;

  explicit CheckedTrainer(const Config& config)
      : trainer(std::make_unique<train::Trainer>(config, runtime(), distributed::Backends{control, gradients})) {
    gradients->accept_only([this](const at::Tensor& t) { return trainer->holds_model_storage(t); });
  }
};

TEST(ModelTraffic, TrainingEvalResumeAndPreemptionVoteKeepControlTrafficOffTheGradientBackend) {
  {
    CheckedTrainer first(traffic_config("resume", {"train.max_steps=7"}));
    const train::FitResult result = first.trainer->fit();
    EXPECT_EQ(result.steps, 7);
    EXPECT_GT(first.gradients->model_tensors(), 0);  // the buckets and the initial parameters went through it
  }
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0 has published
  CheckedTrainer resumed(traffic_config("resume", {}));
  const train::FitResult result = resumed.trainer->fit("latest");
  EXPECT_EQ(result.steps, 14);  // 2 epochs of 7 global batches of 32
  ASSERT_TRUE(result.evaluated);
  EXPECT_EQ(result.eval.samples, 60);
  EXPECT_GT(resumed.trainer->evaluate().accuracy, 0.0);
}

TEST(ModelTraffic, UnusedParametersAndCompressedBucketsStayOnTheModel) {
  testing::register_test_model<PartlyUsed>("partly_used", [] { return PartlyUsed(); });
  CheckedTrainer checked(traffic_config("unused", {"model.name=partly_used", "ddp.find_unused_parameters=true",
                                                   "ddp.compression=bf16", "train.max_steps=5"}));
  EXPECT_EQ(checked.trainer->fit().steps, 5);
  // Without find_unused_parameters the no-gradient map is all-reduced (control) and every rank names the layer.
  CheckedTrainer strict(traffic_config("strict", {"model.name=partly_used", "train.max_steps=2"}));
  try {
    strict.trainer->fit();
    FAIL() << "a step with an unused parameter must fail";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("'idle.weight'"), std::string::npos) << e.message();
  }
}

// ddp.zero = 1: the reduce-scattered buckets, the all-gathered parameters and the optimizer state's shards gathered
// at each save are model storage; the norm's shard totals and which state fields exist go through the control
// backend. Saved every 3 steps and resumed.
TEST(ModelTraffic, ZeroShardsAndTheirGatheredStateStayOnTheModel) {
  {
    CheckedTrainer first(traffic_config("zero", {"ddp.zero=1", "train.max_steps=7", "train.grad_clip=0.1"}));
    EXPECT_EQ(first.trainer->fit().steps, 7);
  }
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0 has published
  CheckedTrainer resumed(traffic_config("zero", {"ddp.zero=1", "train.max_steps=9"}));
  EXPECT_EQ(resumed.trainer->fit("latest").steps, 9);
}

// The check itself: with one backend in both roles, as before control traffic had a backend of its own, the
// first control message (the run id) is refused.
TEST(ModelTraffic, ControlTrafficOnTheGradientBackendIsRefused) {
  auto mpi = std::make_shared<distributed::MpiBackend>();
  auto checking = std::make_shared<testing::ModelTrafficBackend>(*mpi, at::kCPU);
  train::Trainer trainer(traffic_config("refused", {"train.max_steps=1"}), runtime(),
                         distributed::Backends{checking, checking});
  checking->accept_only([&](const at::Tensor& t) { return trainer.holds_model_storage(t); });
  try {
    trainer.fit();
    FAIL() << "control traffic on the gradient backend must be refused";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("not model storage"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace dpt
