// A GPT-2-style decoder: token and position embeddings, pre-norm blocks of causal self-attention and a 4x GELU MLP,
// a final LayerNorm, and logits through the token embedding (tied weights). Input [B, T] token ids (any number
// type: the loader's float32 holds ids exactly up to 2^24), output [B, T, vocab] logits.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

namespace dpt::train {

struct GptOptions {
  std::int64_t vocab = 256;
  std::int64_t context = 128;  // the longest sequence
  std::int64_t layers = 4;
  std::int64_t heads = 4;
  std::int64_t width = 256;  // embedding size; a multiple of heads
};

class GptImpl : public torch::nn::Module {
 public:
  explicit GptImpl(const GptOptions& options);
  torch::Tensor forward(torch::Tensor tokens);

 private:
  GptOptions options_;
  torch::nn::Embedding tokens_{nullptr}, positions_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm final_norm_{nullptr};
};
TORCH_MODULE(Gpt);

}  // namespace dpt::train
