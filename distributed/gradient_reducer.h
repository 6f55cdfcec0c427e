// GradientReducer: parameter gradients live as views into one flat buffer that one all-reduce combines.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "distributed/backend.h"

namespace dpt::distributed {

class GradientReducer {
 public:
  // `parameters` are the trainable tensors (requires_grad); all on one device and of one dtype.
  GradientReducer(std::vector<at::Tensor> parameters, Backend& backend);

  // Zeroes the flat buffer and (re)binds every parameter's .grad to its view; call before backward.
  void zero_grad();

  // Combines gradients across ranks: every rank scales its gradient by `weight` (its share of the global
  // batch: local samples / global samples), then one in-place sum all-reduce; so the result equals the
  // gradient of the mean loss over the whole global batch, even when ranks hold unequal sample counts.
  void synchronize(double weight);

  // Broadcasts every tensor in `tensors` from rank 0 (initial parameters and buffers).
  static void broadcast_from_root(const std::vector<at::Tensor>& tensors, Backend& backend);

  std::int64_t numel() const { return flat_.numel(); }

 private:
  std::vector<at::Tensor> parameters_;
  Backend& backend_;
  at::Tensor flat_;
};

}  // namespace dpt::distributed
