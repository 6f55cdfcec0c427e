// distributed::Backend: the collectives dptrain needs (all-reduce, broadcast, all-gather, barrier), each returning a Work.
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>

namespace dpt::distributed {

enum class ReduceOp { Sum, Avg };

// A collective in flight. wait() returns once the result is in the tensor, or throws dpt::Error.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool is_done() = 0;
};

// A Work that completed when it was created (world size 1, or a synchronous backend).
class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool is_done() override { return true; }
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // The name and how it reaches the ranks, for the run's banner (e.g. the MPI backend's all-reduce path and the
  // ranks' nodes).
  virtual std::string describe() const { return name(); }
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In place over a contiguous tensor; every rank must issue collectives in the same order.
  virtual std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) = 0;
  // The same all-reduce, for a caller that goes on computing before it waits (gradient buckets during backward).
  // Every rank must choose the same variant. A backend may issue it so that waiting for slower ranks costs no CPU.
  virtual std::shared_ptr<Work> allreduce_overlapped(at::Tensor& tensor, ReduceOp op) { return allreduce(tensor, op); }
  virtual std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) = 0;
  // `output` holds world_size() copies of `input`'s shape, stacked along a new leading axis, in rank order.
  virtual std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) = 0;
  virtual std::shared_ptr<Work> barrier() = 0;
};

}  // namespace dpt::distributed
