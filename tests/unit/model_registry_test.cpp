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

// The scaling workloads: the parameter counts of the published architectures, and the output shapes.
TEST(ModelRegistry, ResNetsHaveThePublishedSizes) {
  auto resnet18 = ModelRegistry::global().create("resnet18", nlohmann::json::object());
  EXPECT_EQ(parameter_count(resnet18), 11173962);  // ResNet-18 for CIFAR-10
  EXPECT_EQ(resnet18.forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<std::int64_t>{2, 10}));
  auto resnet50 = ModelRegistry::global().create("resnet50", {{"num_classes", 1000}});
  EXPECT_EQ(parameter_count(resnet50), 25557032);  // torchvision's resnet50
  EXPECT_EQ(resnet50.forward(torch::randn({1, 3, 64, 64})).sizes(), (std::vector<std::int64_t>{1, 1000}));
}

// Logits [B, T, vocab]; position t sees tokens 0..t only (changing a later token leaves earlier logits as they
// were); the output layer is the token embedding (no parameters of its own), so its gradient reaches it.
TEST(ModelRegistry, GptIsACausalDecoderWithTiedEmbeddings) {
  torch::manual_seed(0);
  auto gpt = ModelRegistry::global().create("gpt", {{"vocab", 50}, {"context", 16}, {"layers", 2}, {"heads", 2},
                                                    {"width", 32}});
  // per block: 2 LayerNorms 2x32, qkv 32x96+96, proj 32x32+32, up 32x128+128, down 128x32+32; embeddings 50x32,
  // 16x32; final LayerNorm 64
  EXPECT_EQ(parameter_count(gpt), 2 * (128 + 3168 + 1056 + 4224 + 4128) + 1600 + 512 + 64);
  torch::Tensor tokens = torch::randint(50, {3, 10}).to(torch::kFloat);
  const torch::Tensor logits = gpt.forward(tokens);
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{3, 10, 50}));
  torch::Tensor changed = tokens.clone();
  changed.index_put_({torch::indexing::Slice(), 6}, (tokens.select(1, 6) + 1).remainder(50));
  const torch::Tensor again = gpt.forward(changed);
  EXPECT_TRUE(torch::equal(again.narrow(1, 0, 6), logits.narrow(1, 0, 6)));
  EXPECT_FALSE(torch::allclose(again.narrow(1, 6, 1), logits.narrow(1, 6, 1)));
  logits.sum().backward();
  for (const auto& p : gpt.ptr()->named_parameters()) {
    EXPECT_TRUE(p.value().grad().defined()) << p.key() << " gets no gradient";
  }
  EXPECT_THROW(gpt.forward(torch::zeros({1, 17})), Error);
}

TEST(ModelRegistry, UserModelsRegisterAndUnknownNamesAreListed) {
  ModelRegistry registry;
  registry.add("linear", [](const nlohmann::json&) { return torch::nn::AnyModule(torch::nn::Linear(4, 2)); }, "");
  EXPECT_TRUE(registry.contains("linear"));
  EXPECT_EQ(registry.create("linear", {}).forward(torch::zeros({1, 4})).size(1), 2);
  EXPECT_THROW(registry.add("linear", {}, ""), Error);
  const auto message = [](const std::string& name) {
    try {
      ModelRegistry::global().create(name, {});
    } catch (const Error& e) {
      return e.message();
    }
    return std::string();
  };
  EXPECT_NE(message("convnext_xxl").find("known models: fashion_cnn, gpt, mlp, resnet18, resnet50"), std::string::npos);
  EXPECT_NE(message("resnet9000").find("did you mean 'resnet50'?"), std::string::npos);
}

}  // namespace
}  // namespace dpt::train
