// The loss registry: train.loss names -> losses (cross_entropy and mse built in); a program may also hand the
// Trainer a Loss of its own.
#pragma once

#include <functional>
#include <string>

#include <ATen/ATen.h>

#include "core/registry.h"

namespace dpt::train {

struct Loss {
  // The mean loss over the batch: `output` as the model returns it, `target` as the Source gives it ([n, ...]).
  std::function<at::Tensor(const at::Tensor& output, const at::Tensor& target)> mean;
  // Class labels over the output's last dimension: labels are checked against its size, and evaluation counts
  // accuracy (argmax over the last dimension).
  bool classification = false;
};

// cross_entropy: over the last dimension of [B, ..., C] logits with [B, ...] int64 labels (so [B, T, V] language-
// model logits work), mean over every position. mse: mean squared error, targets widened to the output's dtype.
Registry<Loss>& losses();

// The first label of `targets` (on the CPU) outside [0, classes), as "label 12 of sample 7 of train.h5 ... " with
// what to do; "" when every label fits. `locate(row)` names the sample of a batch row.
std::string check_class_labels(const at::Tensor& targets, std::int64_t classes,
                               const std::function<std::string(std::int64_t row)>& locate);

}  // namespace dpt::train
