// ModelTrafficBackend: a gradient backend for tests that hands every collective to another backend, but first
// refuses (dpt::Error) any tensor that is not on the expected device or does not share memory with the model,
// as NCCL refuses host tensors: control traffic that strays onto the gradient backend fails here on a CPU.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "core/check.h"
#include "distributed/backend.h"

namespace dpt::testing {

class ModelTrafficBackend final : public distributed::Backend {
 public:
  ModelTrafficBackend(distributed::Backend& inner, at::Device device) : inner_(inner), device_(device) {}

  // What counts as the model's storage (set once the model exists); until then every tensor is refused.
  void accept_only(std::function<bool(const at::Tensor&)> is_model) { is_model_ = std::move(is_model); }
  // Tensors that passed the check so far.
  std::int64_t model_tensors() const { return accepted_; }

  std::string name() const override { return "model-traffic(" + inner_.name() + ")"; }
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }

  std::shared_ptr<distributed::Work> allreduce(at::Tensor& tensor, distributed::ReduceOp op) override {
    check(tensor, "all-reduce");
    return inner_.allreduce(tensor, op);
  }
  std::shared_ptr<distributed::Work> allreduce_overlapped(at::Tensor& tensor, distributed::ReduceOp op) override {
    check(tensor, "overlapped all-reduce");
    return inner_.allreduce_overlapped(tensor, op);
  }
  std::shared_ptr<distributed::Work> broadcast(at::Tensor& tensor, int root) override {
    check(tensor, "broadcast");
    return inner_.broadcast(tensor, root);
  }
  std::shared_ptr<distributed::Work> allgather(const at::Tensor& input, at::Tensor& output) override {
    check(input, "all-gather");
    return inner_.allgather(input, output);
  }
  std::shared_ptr<distributed::Work> barrier() override { return inner_.barrier(); }
  std::shared_ptr<distributed::Work> reduce_scatter(at::Tensor& flat, distributed::ReduceOp op) override {
    check(flat, "reduce-scatter");
    return inner_.reduce_scatter(flat, op);
  }
  std::shared_ptr<distributed::Work> reduce_scatter_overlapped(at::Tensor& flat, distributed::ReduceOp op) override {
    check(flat, "overlapped reduce-scatter");
    return inner_.reduce_scatter_overlapped(flat, op);
  }
  std::shared_ptr<distributed::Work> all_gather(at::Tensor& flat) override {
    check(flat, "all-gather");
    return inner_.all_gather(flat);
  }

 private:
  void check(const at::Tensor& tensor, const char* op) {
    DPT_CHECK(tensor.device() == device_, "the gradient backend got a ", op, " of a tensor on ", tensor.device().str(),
              ", not on the model's ", device_.str());
    DPT_CHECK(is_model_ && is_model_(tensor), "the gradient backend got a ", op, " of ", tensor.toString(), " ",
              tensor.sizes(), ", which is not model storage: control traffic belongs on the control backend");
    ++accepted_;
  }

  distributed::Backend& inner_;
  at::Device device_;
  std::function<bool(const at::Tensor&)> is_model_;
  std::atomic<std::int64_t> accepted_{0};
};

}  // namespace dpt::testing
