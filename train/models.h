// Built-in models: fashion_cnn (2 conv + pooling, 0.916 on the public Fashion-MNIST benchmark) and mlp.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

namespace dpt::train {

struct FashionCnnOptions {
  std::int64_t in_channels = 1;
  std::int64_t image_size = 28;  // square inputs; must be divisible by 4 (two 2x2 poolings)
  std::int64_t num_classes = 10;
  double dropout = 0.0;
};

// conv 5x5 32 -> max-pool 2 -> conv 5x5 64 -> max-pool 2 -> FC 1024 -> FC classes, ReLU ("same" padding).
class FashionCnnImpl : public torch::nn::Module {
 public:
  explicit FashionCnnImpl(const FashionCnnOptions& options);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(FashionCnn);

struct MlpOptions {
  std::int64_t inputs = 784;
  std::int64_t hidden = 256;
  std::int64_t num_classes = 10;
};

// flatten -> FC hidden -> ReLU -> FC classes.
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const MlpOptions& options);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace dpt::train
