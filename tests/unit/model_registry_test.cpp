// ModelRegistry: built-in models have the documented shapes; user models register and build by name.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/check.h"
#include "train/model_registry.h"

namespace dpt::train {
namespace {

std::int64_t parameter_count(const torch::nn::AnyModule& m) {
  std::int64_t n = 0;
  for (const auto& p : m.ptr()->parameters()) n += p.numel();
  return n;
}

TEST(ModelRegistry, FashionCnnHasTheBenchmarkArchitecture) {
  auto model = ModelRegistry::global().create("fashion_cnn", nlohmann::json::object());
  // conv1 5x5x1x32+32, conv2 5x5x32x64+64, fc1 3136x1024+1024, fc2 1024x10+10
  EXPECT_EQ(parameter_count(model), 832 + 51264 + 3212288 + 10250);
  EXPECT_EQ(model.forward(torch::zeros({3, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{3, 10}));
}

TEST(ModelRegistry, MlpTakesOptions) {
  auto model = ModelRegistry::global().create("mlp", {{"hidden", 7}});
  EXPECT_EQ(parameter_count(model), 784 * 7 + 7 + 7 * 10 + 10);
  EXPECT_THROW(ModelRegistry::global().create("mlp", {{"hidden", "many"}}), Error);
}

TEST(ModelRegistry, UserModelsRegisterAndUnknownNamesAreListed) {
  ModelRegistry registry;
  registry.add("linear", [](const nlohmann::json&) { return torch::nn::AnyModule(torch::nn::Linear(4, 2)); }, "");
  EXPECT_TRUE(registry.contains("linear"));
  EXPECT_EQ(registry.create("linear", {}).forward(torch::zeros({1, 4})).size(1), 2);
  EXPECT_THROW(registry.add("linear", {}, ""), Error);
  try {
    ModelRegistry::global().create("resnet9000", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("fashion_cnn, mlp"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace dpt::train
