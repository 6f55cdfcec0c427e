// A program that registers its own model ("tiny_cnn") and offers every dptrain command for it:
//   mpirun -np 2 --bind-to none build/examples/custom_model/dptrain_custom train examples/custom_model/config.toml
#include <torch/torch.h>

#include "cli/cli.h"
#include "train/model_registry.h"

// Any torch::nn::Module with `torch::Tensor forward(torch::Tensor)` can be trained by dptrain.
struct TinyCnnImpl : torch::nn::Module {
  explicit TinyCnnImpl(std::int64_t channels)
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, channels, 3).padding(1)))),
        head(register_module("head", torch::nn::Linear(channels * 14 * 14, 10))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv->forward(x)), 2);
    return head->forward(x.flatten(1));
  }

  torch::nn::Conv2d conv;
  torch::nn::Linear head;
};
TORCH_MODULE(TinyCnn);

int main(int argc, char** argv) {
  dpt::train::ModelRegistry::global().add(
      "tiny_cnn",
      [](const nlohmann::json& options) {
        return torch::nn::AnyModule(TinyCnn(dpt::train::model_option(options, "channels", std::int64_t{8})));
      },
      "conv3x3 - pool - FC 10 (options: channels)");
  return dpt::cli::run(argc, argv);
}
