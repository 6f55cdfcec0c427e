// The built-in losses and the check that class labels fit the model's output.
#include "train/losses.h"

#include <torch/nn/functional/loss.h>

namespace dpt::train {

Registry<Loss>& losses() {
  static Registry<Loss>* registry = [] {
    auto* r = new Registry<Loss>("loss", "train.loss");
    r->add("cross_entropy",
           Loss{[](const at::Tensor& logits, const at::Tensor& labels) {
                  const std::int64_t classes = logits.size(-1);
                  return torch::nn::functional::cross_entropy(logits.reshape({-1, classes}), labels.reshape({-1}));
                },
                true},
           "softmax cross-entropy over the last dimension of the logits, labels int64");
    r->add("mse",
           Loss{[](const at::Tensor& output, const at::Tensor& target) {
                  return torch::nn::functional::mse_loss(output, target.to(output.scalar_type()).view_as(output));
                },
                false},
           "mean squared error (regression), targets shaped like the output");
    return r;
  }();
  return *registry;
}

std::string check_class_labels(const at::Tensor& targets, std::int64_t classes,
                               const std::function<std::string(std::int64_t row)>& locate) {
  if (targets.numel() == 0) return "";
  const at::Tensor bad = targets.lt(0).logical_or(targets.ge(classes));
  if (!bad.any().item<bool>()) return "";
  const at::Tensor first = bad.reshape({targets.size(0), -1}).any(1).nonzero();
  const std::int64_t row = first[0].item<std::int64_t>();
  const at::Tensor labels = targets[row].reshape({-1});
  const at::Tensor row_bad = bad[row].reshape({-1}).nonzero();
  const std::int64_t label = labels[row_bad[0].item<std::int64_t>()].item<std::int64_t>();
  return "label " + std::to_string(label) + " of " + locate(row) + " is outside the model's " +
         std::to_string(classes) + " classes (0.." + std::to_string(classes - 1) +
         "): fix the labels in the data, or give the model as many outputs as there are classes";
}

}  // namespace dpt::train
