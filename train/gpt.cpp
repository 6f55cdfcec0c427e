// Gpt: the blocks compute attention with explicit matrix products and a causal mask (LibTorch 1.13 has no fused
// attention), so the same code runs on any LibTorch; weights start as GPT-2's (normal, std 0.02; the residual
// projections scaled by 1/sqrt(2 * layers)).
#include "train/gpt.h"

#include <cmath>
#include <limits>

#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include "core/check.h"

namespace dpt::train {
namespace {

namespace nn = torch::nn;

class DecoderBlockImpl : public nn::Module {
 public:
  DecoderBlockImpl(std::int64_t width, std::int64_t heads, std::int64_t layers) : heads_(heads) {
    norm1_ = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({width})));
    qkv_ = register_module("qkv", nn::Linear(width, 3 * width));
    proj_ = register_module("proj", nn::Linear(width, width));
    norm2_ = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({width})));
    up_ = register_module("up", nn::Linear(width, 4 * width));
    down_ = register_module("down", nn::Linear(4 * width, width));
    const torch::NoGradGuard no_grad;
    for (auto* linear : {&qkv_, &proj_, &up_, &down_}) {
      const bool residual = linear == &proj_ || linear == &down_;
      nn::init::normal_((*linear)->weight, 0.0, 0.02 / (residual ? std::sqrt(2.0 * static_cast<double>(layers)) : 1.0));
      nn::init::zeros_((*linear)->bias);
    }
  }

  torch::Tensor forward(torch::Tensor x, const torch::Tensor& future) {
    const auto b = x.size(0), t = x.size(1), c = x.size(2);
    const auto split = qkv_->forward(norm1_->forward(x)).view({b, t, 3, heads_, c / heads_}).permute({2, 0, 3, 1, 4});
    const torch::Tensor q = split[0], k = split[1], v = split[2];
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(c / heads_));
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    const torch::Tensor attended = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({b, t, c});
    x = x + proj_->forward(attended);
    return x + down_->forward(torch::gelu(up_->forward(norm2_->forward(x))));
  }

 private:
  std::int64_t heads_;
  nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  nn::Linear qkv_{nullptr}, proj_{nullptr}, up_{nullptr}, down_{nullptr};
};
TORCH_MODULE(DecoderBlock);

}  // namespace

GptImpl::GptImpl(const GptOptions& o) : options_(o) {
  DPT_CHECK(o.vocab > 0 && o.context > 0 && o.layers > 0 && o.heads > 0 && o.width > 0,
            "gpt: model.options vocab, context, layers, heads and width must be positive");
  DPT_CHECK(o.width % o.heads == 0, "gpt: model.options.width = ", o.width, " must be a multiple of heads = ",
            o.heads);
  tokens_ = register_module("tokens", nn::Embedding(o.vocab, o.width));
  positions_ = register_module("positions", nn::Embedding(o.context, o.width));
  blocks_ = register_module("blocks", nn::ModuleList());
  for (std::int64_t i = 0; i < o.layers; ++i) blocks_->push_back(DecoderBlock(o.width, o.heads, o.layers));
  final_norm_ = register_module("final_norm", nn::LayerNorm(nn::LayerNormOptions({o.width})));
  const torch::NoGradGuard no_grad;
  nn::init::normal_(tokens_->weight, 0.0, 0.02);
  nn::init::normal_(positions_->weight, 0.0, 0.01);
}

torch::Tensor GptImpl::forward(torch::Tensor tokens) {
  DPT_CHECK(tokens.dim() == 2, "gpt: inputs must be [batch, tokens] token ids, got ", tokens.sizes(),
            ": point data.inputs at a token dataset (dptrain data import-text)");
  const auto t = tokens.size(1);
  DPT_CHECK(t <= options_.context, "gpt: sequences of ", t, " tokens exceed model.options.context = ",
            options_.context, ": raise it or import shorter sequences");
  const torch::Tensor ids = tokens.to(torch::kLong);
  const torch::Tensor place = torch::arange(t, ids.options());
  torch::Tensor x = tokens_->forward(ids) + positions_->forward(place);
  const torch::Tensor future = torch::ones({t, t}, ids.options().dtype(torch::kBool)).triu(1);
  for (const auto& block : *blocks_) x = block->as<DecoderBlockImpl>()->forward(x, future);
  return torch::matmul(final_norm_->forward(x), tokens_->weight.t());
}

}  // namespace dpt::train
