// ResNet: stem, four stages of residual blocks (the first block of stages 2-4 strides 2, with a 1x1 projection
// on its shortcut), global average pooling, one linear layer.
#include "train/resnet.h"

#include <torch/nn/functional.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "core/check.h"

namespace dpt::train {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

class ResidualBlockImpl : public nn::Module {
 public:
  ResidualBlockImpl(std::int64_t in, std::int64_t planes, std::int64_t stride, bool bottleneck) {
    const std::int64_t out = bottleneck ? planes * 4 : planes;
    body_ = register_module("body", bottleneck ? nn::Sequential(conv(in, planes, 1, 1), nn::BatchNorm2d(planes),
                                                                nn::ReLU(), conv(planes, planes, 3, stride),
                                                                nn::BatchNorm2d(planes), nn::ReLU(),
                                                                conv(planes, out, 1, 1), nn::BatchNorm2d(out))
                                               : nn::Sequential(conv(in, planes, 3, stride), nn::BatchNorm2d(planes),
                                                                nn::ReLU(), conv(planes, planes, 3, 1),
                                                                nn::BatchNorm2d(planes)));
    if (stride != 1 || in != out) {
      shortcut_ = register_module("shortcut", nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::relu(body_->forward(x) + (shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  nn::Sequential body_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(ResidualBlock);

}  // namespace

ResNetImpl::ResNetImpl(const ResNetOptions& o) {
  DPT_CHECK(o.blocks.size() == 4 && o.width > 0, "resnet: four stages and a positive width are needed");
  stem_ = register_module("stem", o.imagenet_stem
                                      ? nn::Sequential(conv(o.in_channels, o.width, 7, 2), nn::BatchNorm2d(o.width),
                                                       nn::ReLU(),
                                                       nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)))
                                      : nn::Sequential(conv(o.in_channels, o.width, 3, 1), nn::BatchNorm2d(o.width),
                                                       nn::ReLU()));
  stages_ = register_module("stages", nn::Sequential());
  std::int64_t channels = o.width;
  for (std::size_t stage = 0; stage < o.blocks.size(); ++stage) {
    const std::int64_t planes = o.width << stage;
    for (std::int64_t b = 0; b < o.blocks[stage]; ++b) {
      const std::int64_t stride = stage > 0 && b == 0 ? 2 : 1;
      stages_->push_back(ResidualBlock(channels, planes, stride, o.bottleneck));
      channels = o.bottleneck ? planes * 4 : planes;
    }
  }
  fc_ = register_module("fc", nn::Linear(channels, o.num_classes));
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = stages_->forward(stem_->forward(x));
  return fc_->forward(x.mean({2, 3}));
}

}  // namespace dpt::train
