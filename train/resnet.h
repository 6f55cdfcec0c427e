// ResNet (He et al. 2016) as scaling studies use it: ResNet-18 with the CIFAR stem (3x3 conv, no pooling) and
// ResNet-50 with the ImageNet stem (7x7/2 conv, 3x3/2 max-pool), BatchNorm after every convolution.
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace dpt::train {

struct ResNetOptions {
  std::vector<std::int64_t> blocks = {2, 2, 2, 2};  // residual blocks per stage
  bool bottleneck = false;                         // 1x1-3x3-1x1 blocks with 4x expansion (ResNet-50) or 3x3-3x3
  bool imagenet_stem = false;
  std::int64_t in_channels = 3;
  std::int64_t num_classes = 10;
  std::int64_t width = 64;  // channels of the first stage; each later stage doubles them
};

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential stem_{nullptr}, stages_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace dpt::train
