// Built-in models and their registration in the global ModelRegistry.
#include "train/models.h"

#include <torch/nn/functional.h>

#include "core/check.h"
#include "train/gpt.h"
#include "train/model_registry.h"
#include "train/resnet.h"

namespace dpt::train {

namespace F = torch::nn::functional;

FashionCnnImpl::FashionCnnImpl(const FashionCnnOptions& o) {
  DPT_CHECK(o.image_size > 0 && o.image_size % 4 == 0, "fashion_cnn: model.options.image_size = ", o.image_size,
            " must be a positive multiple of 4");
  conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, 32, 5).padding(2)));
  conv2_ = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)));
  const std::int64_t side = o.image_size / 4;
  fc1_ = register_module("fc1", torch::nn::Linear(64 * side * side, 1024));
  fc2_ = register_module("fc2", torch::nn::Linear(1024, o.num_classes));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor FashionCnnImpl::forward(torch::Tensor x) {
  x = F::max_pool2d(torch::relu(conv1_->forward(x)), F::MaxPool2dFuncOptions(2));
  x = F::max_pool2d(torch::relu(conv2_->forward(x)), F::MaxPool2dFuncOptions(2));
  x = torch::relu(fc1_->forward(x.flatten(1)));
  return fc2_->forward(dropout_->forward(x));
}

MlpImpl::MlpImpl(const MlpOptions& o) {
  fc1_ = register_module("fc1", torch::nn::Linear(o.inputs, o.hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(o.hidden, o.num_classes));
}

torch::Tensor MlpImpl::forward(torch::Tensor x) { return fc2_->forward(torch::relu(fc1_->forward(x.flatten(1)))); }

void register_builtin_models(ModelRegistry& registry) {
  registry.add(
      "fashion_cnn",
      [](const nlohmann::json& options) {
        FashionCnnOptions o;
        o.in_channels = model_option(options, "in_channels", o.in_channels);
        o.image_size = model_option(options, "image_size", o.image_size);
        o.num_classes = model_option(options, "num_classes", o.num_classes);
        o.dropout = model_option(options, "dropout", o.dropout);
        return torch::nn::AnyModule(FashionCnn(o));
      },
      "conv5x5/32 - pool - conv5x5/64 - pool - FC 1024 - FC classes (options: in_channels, image_size, "
      "num_classes, dropout)");
  registry.add(
      "mlp",
      [](const nlohmann::json& options) {
        MlpOptions o;
        o.inputs = model_option(options, "inputs", o.inputs);
        o.hidden = model_option(options, "hidden", o.hidden);
        o.num_classes = model_option(options, "num_classes", o.num_classes);
        return torch::nn::AnyModule(Mlp(o));
      },
      "flatten - FC hidden - ReLU - FC classes (options: inputs, hidden, num_classes)");
  const auto resnet = [](std::vector<std::int64_t> blocks, bool bottleneck, bool imagenet_stem) {
    return [=](const nlohmann::json& options) {
      ResNetOptions o;
      o.blocks = blocks;
      o.bottleneck = bottleneck;
      o.imagenet_stem = model_option(options, "imagenet_stem", std::int64_t{imagenet_stem}) != 0;
      o.in_channels = model_option(options, "in_channels", o.in_channels);
      o.num_classes = model_option(options, "num_classes", o.num_classes);
      o.width = model_option(options, "width", o.width);
      return torch::nn::AnyModule(ResNet(o));
    };
  };
  registry.add("resnet18", resnet({2, 2, 2, 2}, false, false),
               "ResNet-18, CIFAR stem (3x3 conv, no pooling), BatchNorm; 11.2M parameters at width 64 (options: "
               "in_channels, num_classes, width, imagenet_stem = 0|1)");
  registry.add("resnet50", resnet({3, 4, 6, 3}, true, true),
               "ResNet-50, ImageNet stem (7x7/2 conv, 3x3/2 max-pool), bottleneck blocks, BatchNorm; 23.5M "
               "parameters at width 64 and 10 classes (options: in_channels, num_classes, width, imagenet_stem)");
  registry.add(
      "gpt",
      [](const nlohmann::json& options) {
        GptOptions o;
        o.vocab = model_option(options, "vocab", o.vocab);
        o.context = model_option(options, "context", o.context);
        o.layers = model_option(options, "layers", o.layers);
        o.heads = model_option(options, "heads", o.heads);
        o.width = model_option(options, "width", o.width);
        return torch::nn::AnyModule(Gpt(o));
      },
      "GPT-2-style decoder: causal self-attention, tied embeddings, [B, T] tokens -> [B, T, vocab] logits "
      "(options: vocab, context, layers, heads, width; 3.3M parameters by default, layers 6 width 384: 10.8M)");
}

}  // namespace dpt::train
